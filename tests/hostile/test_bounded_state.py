"""Old work stays bounded and history stays single: one metric point and one progress line per step,
checkpoints pruned to the newest N, the sweeper never piling up messages the broker still holds."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from skill_adapter import crud
from skill_adapter.core.config import Settings
from skill_adapter.core.db import get_engine, init_db, session_scope, upgrade_db
from skill_adapter.queued import TRAINING, WorkId
from skill_adapter.training.checkpoints import mark_complete, prune_checkpoints
from skill_adapter.worker.queue import Sender
from skill_adapter.worker.supervisor import sweep_queued


def new_job(settings: Settings, job_id: str = "train-aaaaaaaaaaaa") -> str:
    init_db(settings)
    with session_scope(settings) as session:
        crud.create_job(session=session, job_id=job_id, skill_path="x", skill_name="x", config={"num_epochs": 1})
    return job_id


def test_a_redone_step_replaces_its_point_and_its_line(settings: Settings) -> None:
    job_id = new_job(settings)
    with session_scope(settings) as session:
        for step in (1, 2, 3):
            crud.add_metric(session=session, job_id=job_id, step=step, loss=float(step))
            crud.add_log(session=session, job_id=job_id, message=f"step {step}/9: first run", step=step)
        crud.add_log(session=session, job_id=job_id, message="resuming from checkpoint-1")
        # The resumed run redoes steps 2 and 3; its held-out loss at step 3 merges into its own point.
        for step in (2, 3):
            crud.add_metric(session=session, job_id=job_id, step=step, loss=10.0 + step)
            crud.add_log(session=session, job_id=job_id, message=f"step {step}/9: second run", step=step)
        crud.add_metric(session=session, job_id=job_id, step=3, merge=True, eval_loss=0.5)
    with session_scope(settings) as session:
        points = crud.read_metrics(session=session, job_id=job_id, after=0, limit=100)
        lines = [line.message for line in crud.read_logs(session=session, job_id=job_id, after=0, limit=100)]
    assert sorted(p.step for p in points) == [1, 2, 3]
    by_step = {p.step: p for p in points}
    assert (by_step[2].loss, by_step[3].loss, by_step[3].eval_loss) == (12.0, 13.0, 0.5)
    assert [p.step for p in points] == [1, 2, 3]  # rewritten points come after the cursor of earlier reads
    assert lines == [
        "step 1/9: first run",
        "resuming from checkpoint-1",
        "step 2/9: second run",
        "step 3/9: second run",
    ]


def test_migration_0003_removes_duplicates_kept_by_older_resumes(settings: Settings) -> None:
    upgrade_db(settings, "0002")
    engine = get_engine(settings)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (id, status, skill_name, skill_path, config, created_at, cancel_requested, "
                "current_epoch, total_epochs, step, attempts, progress) VALUES ('train-bbbbbbbbbbbb', 'running', "
                "'x', 'x', '{}', '2026-12-01 00:00:00', 0, 0, 1, 0, 1, 0)"
            )
        )
        for step, loss in ((1, 1.0), (2, 2.0), (2, 22.0), (3, 3.0), (3, 33.0)):
            conn.execute(
                text("INSERT INTO metric_points (job_id, ts, step, loss) VALUES (:j, '2026-12-01 00:00:00', :s, :l)"),
                {"j": "train-bbbbbbbbbbbb", "s": step, "l": loss},
            )
    assert upgrade_db(settings).up_to_date
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT step, loss FROM metric_points ORDER BY step")).all()
    assert [tuple(row) for row in rows] == [(1, 1.0), (2, 22.0), (3, 33.0)]


def checkpoint(out: Path, step: int, *, complete: bool = True) -> Path:
    folder = out / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    if complete:
        mark_complete(folder, step=step)
    return folder


def test_retention_keeps_the_newest_complete_the_resumed_one_and_a_save_in_progress(tmp_path: Path) -> None:
    out = tmp_path / "job"
    for step in (2, 4, 6, 8, 10):
        checkpoint(out, step)
    torn = checkpoint(out, 5, complete=False)
    in_progress = checkpoint(out, 12, complete=False)
    (out / "final").mkdir()
    removed = prune_checkpoints(out, keep=2, protect=out / "checkpoint-4")
    assert sorted(p.name for p in removed) == ["checkpoint-2", "checkpoint-5", "checkpoint-6"]
    left = sorted(p.name for p in out.iterdir())
    assert left == ["checkpoint-10", "checkpoint-12", "checkpoint-4", "checkpoint-8", "final"]
    assert not torn.exists() and in_progress.exists()


def test_the_sweeper_does_not_resend_what_the_embedded_broker_still_holds(settings: Settings) -> None:
    settings.prepare_dirs()
    settings = settings.model_copy(update={"requeue_after_seconds": 0.01})
    sender = Sender(settings)
    waiting, lost = new_job(settings, "train-cccccccccccc"), new_job(settings, "train-dddddddddddd")
    sender(WorkId(waiting, TRAINING.name))  # its message sits in the broker's folder; the other's was lost
    queue = settings.broker_folder / "queue"
    assert len(list(queue.glob("*.msg"))) == 1
    assert sender.waiting_job_ids() == {waiting}
    rounds = [sweep_queued(settings=settings, enqueue=sender, older_than=0) for _ in range(3)]
    assert rounds == [[lost], [], []]  # the lost message is sent again once; a waiting one never
    messages = [json.loads(p.read_bytes()) for p in queue.glob("*.msg")]
    assert len(messages) == 2  # one per job, however many rounds ran
