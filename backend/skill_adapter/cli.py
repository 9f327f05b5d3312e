"""``skill-adapter``: serve | serve-models | worker | train | evaluate | export | export-vllm | preview | db |
keys | doctor.

One subcommand per verb; each imports what it needs when it runs."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from skill_adapter.core.config import ConfigError, Settings, load_settings

log = logging.getLogger("skill_adapter.cli")


def _die_with_parent() -> None:  # runs in the forked child before exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def worker_command(queues: str | None = None, name: str | None = None) -> list[str]:
    """The Celery worker command line; by default it consumes every kind's queue (``queued.QUEUES``)."""
    from skill_adapter.queued import QUEUES

    queues = queues or ",".join(QUEUES)
    cmd = [
        sys.executable, "-m", "celery", "-A", "skill_adapter.worker.celery_app", "worker",
        "--pool=solo", "--concurrency=1", "-Q", queues, "--loglevel=INFO", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    return [*cmd, "-n", name] if name else cmd


def start_embedded_worker() -> subprocess.Popen[bytes]:
    """One Celery worker in a child process that dies with this one, even after kill -9."""
    return subprocess.Popen(
        worker_command(name="embedded@%h"),
        preexec_fn=_die_with_parent,
        start_new_session=True,  # Ctrl-C reaches only us; we stop the worker ourselves
    )


def stop_process(proc: subprocess.Popen[bytes], *, grace: float = 3.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_model_server(host: str, port: int) -> subprocess.Popen[bytes]:
    """``skill-adapter serve-models`` in a child process that dies with this one (the API never loads a model).
    It loads the base model on the first request that needs it, not while the machine may be training."""
    cmd = [sys.executable, "-m", "skill_adapter.cli", "serve-models", "--host", host, "--port", str(port), "--lazy"]
    return subprocess.Popen(
        cmd,
        preexec_fn=_die_with_parent,
        start_new_session=True,
    )


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_access_check(settings: Settings, host: str, *, insecure_no_auth: bool) -> tuple[bool, list[str]]:
    """Whether ``serve`` may bind ``host``, and the lines it prints about who may call it."""
    from skill_adapter.auth import active_keys, keys_required
    from skill_adapter.core.db import session_scope

    with session_scope(settings) as session:
        keys, required = active_keys(session), keys_required(session)
    where = f"{host}"
    if required:
        admins = sum(1 for key in keys if key.admin)
        lines = [f"auth: {len(keys)} API key(s) ({admins} admin): every /api route needs 'Authorization: Bearer KEY'"]
        if not is_loopback(host) and settings.allowed_host_names <= LOOPBACK_HOSTS | {"testserver"}:
            lines.append(
                "auth: SKILL_ADAPTER_ALLOWED_HOSTS lists only loopback names: clients on the network must be "
                "reached under one of them; set it to the names they use (e.g. gpu-box,gpu-box.lan)"
            )
        return True, lines
    if is_loopback(host):
        return True, [
            f"auth: no API key: anyone who can reach {where} may use the API (fine on a laptop); "
            "`skill-adapter keys create NAME` turns keys on"
        ]
    if insecure_no_auth:
        return True, [
            f"auth: insecure: no API key and --insecure-no-auth: anyone who can reach {where} on the network may "
            "start, cancel and read every job; create a key with `skill-adapter keys create NAME`"
        ]
    return False, [
        f"error: refusing to serve on {where} without an API key: anyone on the network could start GPU jobs and "
        "read every adapter. Create a key first (`skill-adapter keys create NAME`, it is printed once), or bind "
        "127.0.0.1, or pass --insecure-no-auth if something in front of the service authenticates callers."
    ]


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from skill_adapter.api.main import create_app, run_server
    from skill_adapter.core.db import init_db
    from skill_adapter.health import EmbeddedWorker

    init_db(settings)
    allowed, lines = serve_access_check(settings, args.host, insecure_no_auth=args.insecure_no_auth)
    for line in lines:
        print(line, file=sys.stderr if not allowed or "insecure" in line else sys.stdout, flush=True)
    if not allowed:
        return 2
    worker = None if args.no_worker else start_embedded_worker()
    model_server = None
    model_server_url = settings.model_server_url
    if model_server_url is None and not args.no_model_server:
        port = args.model_server_port or free_port()
        model_server = start_model_server("127.0.0.1", port)
        model_server_url = f"http://127.0.0.1:{port}"
    try:
        app = create_app(
            settings,
            embedded_worker=EmbeddedWorker(worker) if worker is not None else None,
            model_server_url=model_server_url,
        )
        run_server(app, host=args.host, port=args.port)
    finally:
        for child in (worker, model_server):
            if child is not None:
                stop_process(child)
    return 0


def cmd_serve_models(args: argparse.Namespace, settings: Settings) -> int:
    """The model server alone: OpenAI-compatible /v1 over the base model and every succeeded adapter."""
    import uvicorn

    from skill_adapter.core.db import init_db
    from skill_adapter.serving.server import create_model_server

    init_db(settings)
    if not is_loopback(args.host) and not args.insecure_no_auth:
        print(
            f"error: refusing to serve the model server on {args.host}: it checks no API keys. Bind it to a private "
            "network address with --insecure-no-auth and let clients reach it through the API's /v1 (which checks "
            "keys, SKILL_ADAPTER_MODEL_SERVER_URL), or bind 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    print(f"model server on http://{args.host}:{args.port}/v1, base model {settings.base_model().name}", flush=True)
    uvicorn.run(create_model_server(settings, preload=not args.lazy), host=args.host, port=args.port, log_level="info")
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    """Merge a job's adapter into its base model and save a standalone model (safetensors + tokenizer)."""
    from skill_adapter.core.db import init_db
    from skill_adapter.core.errors import SkillAdapterError
    from skill_adapter.serving.vllm import adapters_for

    init_db(settings)
    try:
        (adapter,) = adapters_for([args.job_id], settings=settings)
    except SkillAdapterError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    out = Path(args.merged).expanduser()
    if out.exists() and any(out.iterdir()) and not args.force:
        print(f"error: {out} exists and is not empty (pass --force to write into it)", file=sys.stderr)
        return 2
    print(f"merging {adapter.path} into its base model {adapter.base} ...", flush=True)
    from skill_adapter.serving.export import export_merged

    export_merged(adapter.path, out)
    print(f"wrote {out}: load it with AutoModelForCausalLM.from_pretrained({str(out)!r})")
    return 0


def cmd_export_vllm(args: argparse.Namespace, settings: Settings) -> int:
    """Print the ``vllm serve`` command that serves the chosen adapters beside their base model."""
    from skill_adapter.core.db import init_db
    from skill_adapter.core.errors import SkillAdapterError
    from skill_adapter.serving.vllm import adapters_for, vllm_command

    init_db(settings)
    try:
        adapters = adapters_for(args.models, settings=settings)
        command = vllm_command(adapters, port=args.port)
    except SkillAdapterError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    print(json.dumps(command, indent=2) if args.json else command["shell"])
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from skill_adapter.core.db import init_db

    init_db(settings)
    cmd = worker_command(args.queues, args.name)
    sys.stdout.flush()
    sys.stderr.flush()
    # Become the Celery worker: SIGTERM (docker stop) and kill -9 reach it directly, not a wrapper.
    os.execv(cmd[0], cmd)


def add_param_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per training parameter (core/params.py); an absent flag leaves the configured default."""
    from skill_adapter.core.params import PARAMS

    group = parser.add_argument_group("training parameters (unset: the SKILL_ADAPTER_* variable, else the default)")
    for param in PARAMS:
        if not param.cli:
            continue
        shown = f"{param.help} (default: {param.shown_default()})"
        if param.annotation is bool:
            group.add_argument(
                param.flag_name, dest=param.flag_dest, action=argparse.BooleanOptionalAction, default=None, help=shown
            )
        elif param.scalar is not None:
            metavar = {int: "N", float: "X"}.get(param.scalar, "TEXT")
            group.add_argument(param.flag_name, dest=param.flag_dest, type=param.scalar, metavar=metavar, help=shown)
        elif param.is_list:
            group.add_argument(param.flag_name, dest=param.flag_dest, metavar="NAMES", help=shown)
        else:
            kinds = {type(value) for value in param.choices}
            group.add_argument(
                param.flag_name,
                dest=param.flag_dest,
                type=kinds.pop() if len(kinds) == 1 else str,
                choices=param.choices,
                help=shown,
            )


def _train_params(args: argparse.Namespace) -> dict[str, object]:
    """The request's fields from ``train``'s flags: only those given."""
    from skill_adapter.core.params import PARAMS

    return {
        param.name: param.from_setting(getattr(args, param.flag_dest))
        for param in PARAMS
        if param.cli and getattr(args, param.flag_dest, None) is not None
    }


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError
    from tqdm import tqdm

    from skill_adapter import crud
    from skill_adapter.core.db import init_db, session_scope
    from skill_adapter.core.errors import SkillAdapterError
    from skill_adapter.pipeline import execute_job
    from skill_adapter.queued import TRAINING, request_cancel
    from skill_adapter.schemas import TrainingParams
    from skill_adapter.service import create_training_job

    skill_file = Path(args.skill).expanduser()
    if skill_file.is_dir():
        skill_file = skill_file / "SKILL.md"
    if not skill_file.is_file():
        print(f"error: no SKILL.md at {skill_file}", file=sys.stderr)
        return 2
    init_db(settings)
    try:
        params = TrainingParams.model_validate(_train_params(args))
        with session_scope(settings) as session:
            job = create_training_job(
                session=session, skill_file=skill_file.resolve(), params=params, settings=settings
            )
            job_id = job.id
    except ValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SkillAdapterError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    base_model = settings.base_model()
    print(f"job {job_id}: training {skill_file} on {base_model.name}", flush=True)
    if base_model.converts_on_first_use:
        print(f"  first use of {base_model.name}: it is converted once into {base_model.path}", flush=True)
    print("  starting the training process (it imports torch, transformers and TRL first)", flush=True)

    result: dict[str, str] = {}

    def run() -> None:
        status = execute_job(job_id, settings=settings)
        while status == "queued":  # the training process died with attempts left: resume it here, now
            status = execute_job(job_id, settings=settings)
        result.update(status=status)

    runner = threading.Thread(target=run)
    runner.start()
    bar = tqdm(total=100, unit="%", bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}] {postfix}")
    bar.set_postfix_str("starting")
    last_log = 0
    training = False
    try:
        while runner.is_alive():
            runner.join(timeout=0.5)
            with session_scope(settings) as session:
                job = crud.get_job(session=session, job_id=job_id)
                lines = crud.read_logs(session=session, job_id=job_id, after=last_log, limit=200)
                training = training or job.loss is not None or job.progress > 0
                for line in lines:
                    last_log = line.id
                    if not training:  # until the first step, say what is happening: loading, converting...
                        bar.write(f"  {line.message.splitlines()[0][:200]}")
                bar.n = round(job.progress * 100)
                loss = f"loss={job.loss:.4f}" if job.loss is not None else ""
                bar.set_postfix_str(f"epoch {job.current_epoch}/{job.total_epochs} {loss}" if training else "preparing")
    except KeyboardInterrupt:
        with session_scope(settings) as session:
            request_cancel(session=session, kind=TRAINING, work=crud.get_job(session=session, job_id=job_id))
        runner.join()
    bar.close()
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
    if job.status != "succeeded":
        print(f"{job.status}: [{job.error_code}] {job.error_message or ''}", file=sys.stderr)
        return 1
    adapter = _shown_path(Path(str(job.adapter_path)))
    print(f"succeeded: adapter in {adapter}")
    if args.sample:
        _print_sample(dict(job.config), Path(str(job.adapter_path)))
    print(
        "load it: PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), "
        f'"{adapter}"), base = adapter_config.json\'s base_model_name_or_path'
    )
    return 0


def _shown_path(path: Path) -> Path:
    """``path`` relative to the working directory when it is inside it (shorter to read and to paste)."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _print_sample(config: dict[str, Any], adapter_path: Path) -> None:
    """One held-out prompt answered by the base model and by the adapter: what the adapter does."""
    from skill_adapter.training.sample import compare, first_held_out_prompt, one_line

    prompt = first_held_out_prompt(adapter_path.parent)
    if prompt is None:
        return
    print("comparing the base model and the adapter on a held-out prompt...", flush=True)
    try:
        sample = compare(config, adapter_path, prompt)
    except Exception as exc:  # the adapter is saved; a failed demo must not turn success into failure
        print(f"  (could not run the comparison: {type(exc).__name__}: {exc})", file=sys.stderr)
        return
    print(f"  prompt:  {one_line(prompt)}")
    print(f"  base:    {one_line(sample.base)}")
    print(f"  adapter: {one_line(sample.adapter)}")


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Run a new evaluation of a job in the foreground (or show the latest) and print its Markdown report."""
    from skill_adapter import crud
    from skill_adapter.core.db import init_db, session_scope
    from skill_adapter.core.errors import SkillAdapterError
    from skill_adapter.evaluation.jobs import create_evaluation, execute_evaluation
    from skill_adapter.evaluation.report import to_markdown

    init_db(settings)
    try:
        with session_scope(settings) as session:
            crud.get_job(session=session, job_id=args.job_id)
            if args.show:
                reports = [e.report for e in crud.list_evaluations(session=session, job_id=args.job_id) if e.report]
                if not reports:
                    print(f"error: job {args.job_id} has no finished evaluation", file=sys.stderr)
                    return 1
                print(json.dumps(reports[0], indent=2) if args.json else to_markdown(reports[0]))
                return 0
            params: dict[str, Any] = {"max_new_tokens": args.max_new_tokens, "limit": args.limit}
            if args.evals:
                params["evals"] = json.loads(Path(args.evals).read_text(encoding="utf-8"))
            evaluation = create_evaluation(
                session=session,
                job_id=args.job_id,
                params={k: v for k, v in params.items() if v is not None},
                settings=settings,
            )
            evaluation_id = evaluation.id
    except SkillAdapterError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"error: cannot read --evals: {exc}", file=sys.stderr)
        return 2
    print(f"evaluation {evaluation_id} of {args.job_id}: base, base + SKILL.md, adapter", file=sys.stderr)
    done = threading.Event()
    watcher = threading.Thread(target=_show_progress, args=(settings, evaluation_id, done), daemon=True)
    watcher.start()
    try:
        execute_evaluation(evaluation_id, settings=settings)
    finally:
        done.set()
        watcher.join(timeout=5)
    with session_scope(settings) as session:
        evaluation = crud.get_evaluation(session=session, evaluation_id=evaluation_id)
    if evaluation.status != "succeeded" or evaluation.report is None:
        print(f"{evaluation.status}: [{evaluation.error_code}] {evaluation.error_message or ''}", file=sys.stderr)
        return 1
    print(json.dumps(evaluation.report, indent=2) if args.json else to_markdown(evaluation.report))
    print(f"report saved in {evaluation.report_path}", file=sys.stderr)
    return 0


def _show_progress(settings: Settings, evaluation_id: str, done: threading.Event) -> None:
    """Print the running evaluation's progress (from its row) to stderr whenever it moves by 5 points."""
    from skill_adapter import crud
    from skill_adapter.core.db import session_scope

    shown = -1
    while not done.wait(2.0):
        try:
            with session_scope(settings) as session:
                progress = crud.get_evaluation(session=session, evaluation_id=evaluation_id).progress
        except Exception:  # progress is a courtesy; the evaluation itself reports its end
            continue
        percent = int(progress * 100) // 5 * 5
        if percent > shown:
            shown = percent
            print(f"  evaluating: {percent}%", file=sys.stderr, flush=True)


def format_preview(result: dict[str, Any], *, examples: int = 5) -> str:
    """The preview as text: the skill, its findings, the dataset statistics and a few examples."""
    skill, stats = result["skill"], result["dataset_stats"]
    lines = [f"skill: {skill['name']}  ({skill.get('source') or ''})", f"description: {skill['description']}"]
    lines.append(f"sections: {len(skill['sections'])}  references: {len(skill['references'])}")
    lines.append(f"findings: {len(result['findings'])}")
    for finding in result["findings"]:
        where = f"line {finding['line']}" if finding.get("line") else "-"
        lines.append(f"  {finding['severity']:<7} {finding['code']:<22} {where:<9} {finding['message']}")
    lines.append(
        f"dataset: {stats['train_examples']} train, {stats['held_out_examples']} held-out (seed {stats['seed']})"
    )
    for split in ("train", "held_out"):
        counts = ", ".join(f"{name} {n}" for name, n in stats["by_generator"][split].items())
        lines.append(f"  {split:<9} {counts}")
    if stats["dropped"]:
        lines.append("  dropped   " + ", ".join(f"{reason} {n}" for reason, n in stats["dropped"].items()))
    tokens = stats["tokens"]["all"]
    how = "tokens" if stats["tokens"]["exact"] else "tokens (estimated, no tokenizer.json)"
    lines.append(
        f"{how}: min {tokens['min']}, median {tokens['p50']}, p95 {tokens['p95']}, max {tokens['max']}; "
        f"{stats['over_max_seq_length']} over max_seq_length {stats['max_seq_length']}"
    )
    distill = result.get("distill")
    if result.get("recipe") == "distill" and distill:
        lines.append(
            f"recipe distill: {len(distill['prompts'])} known prompts, {distill['model_written_prompts']} more written "
            "by the base model; the teacher (base + SKILL.md) answers them when the job runs"
        )
        if distill["skill_truncated_for_teacher"]:
            lines.append(
                f"  the SKILL.md ({distill['skill_tokens']} tokens) does not fit the teacher's context "
                f"({distill['teacher_context_tokens']}): the teacher will see it truncated"
            )
        for prompt in distill["prompts"][:examples]:
            lines.append(f"- [{prompt['split']}/{prompt['source']}] {prompt['prompt']}")
        lines.append("template examples (recipe template):")
    for example in result["examples"][:examples]:
        prompt = example["prompt"][0]["content"]
        completion = example["completion"][0]["content"].replace("\n", " / ")
        lines.append(f"- [{example['split']}/{example['generator']}] {prompt}")
        lines.append(f"    -> {completion[:160]}{'...' if len(completion) > 160 else ''}")
    return "\n".join(lines)


def cmd_preview(args: argparse.Namespace, settings: Settings) -> int:
    from skill_adapter.core.errors import SkillAdapterError
    from skill_adapter.service import preview_skill

    skill_file = Path(args.skill).expanduser()
    try:
        result = preview_skill(skill_file, settings=settings, seed=args.seed, max_seq_length=args.max_seq_length)
    except SkillAdapterError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str) if args.json else format_preview(result, examples=args.examples))
    return 0


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    """``db upgrade`` applies the migrations, ``db current`` shows where the schema stands, ``db stamp`` records one."""
    from skill_adapter.core.db import safe_url, schema_state, stamp_db, upgrade_db

    where = safe_url(settings.resolved_database_url)
    if args.action == "upgrade":
        state = upgrade_db(settings, args.revision or "head")
        print(f"{where}: schema at revision {state.current} (newest {state.head})")
        return 0
    if args.action == "revision":
        from skill_adapter.core.db import new_revision

        if not args.message:
            print("error: db revision needs -m MESSAGE", file=sys.stderr)
            return 2
        print(f"wrote {new_revision(args.message)}: check it, then run the migration tests")
        return 0
    if args.action == "stamp":
        stamp_db(settings, args.revision or "head")
        print(f"{where}: recorded revision {args.revision or 'head'} without running it")
        return 0
    settings.prepare_dirs()
    state = schema_state(settings)
    if state.up_to_date:
        print(f"{where}: schema at revision {state.current} (up to date)")
        return 0
    print(
        f"{where}: schema at revision {state.current or 'none'}, newest is {state.head}: run `skill-adapter db upgrade`"
    )
    return 1


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    """``keys create NAME [--admin]`` prints the new key alone on its last line; ``list``; ``revoke NAME``;
    ``adopt NAME`` gives the jobs and evaluations that have no owner (from before keys) to NAME."""
    from skill_adapter import auth
    from skill_adapter.core.db import init_db, session_scope
    from skill_adapter.core.errors import SkillAdapterError

    init_db(settings)
    try:
        with session_scope(settings) as session:
            if args.action == "list":
                rows = auth.list_keys(session)
                if not rows:
                    print("no API keys: the API answers anyone who can reach it (serve binds loopback only)")
                for row in rows:
                    state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
                    role = "admin" if row.admin else "user"
                    print(f"{row.name:<24} {role:<6} {row.prefix}…  created {row.created_at:%Y-%m-%d %H:%M}  {state}")
                return 0
            if not args.name:
                print(f"error: keys {args.action} needs NAME", file=sys.stderr)
                return 2
            if args.action == "create":
                key = auth.create_key(session, args.name, admin=args.admin)
                adopted = auth.adopt_unowned(session, args.name) if args.adopt else None
            elif args.action == "revoke":
                if not auth.revoke_key(session, args.name):
                    print(f"error: no active key named {args.name!r}", file=sys.stderr)
                    return 1
                print(f"revoked the key {args.name!r}; the API refuses it within {settings.keys_cache_seconds:g} s")
                return 0
            else:  # adopt
                jobs, evaluations = auth.adopt_unowned(session, args.name)
                print(f"{jobs} job(s) and {evaluations} evaluation(s) without an owner now belong to {args.name!r}")
                return 0
    except SkillAdapterError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    role = "admin key (sees every job)" if args.admin else "key"
    print(f"created the {role} {args.name!r}. It is shown only now; send it as 'Authorization: Bearer KEY':")
    if adopted is not None:
        print(f"({adopted[0]} job(s) and {adopted[1]} evaluation(s) without an owner now belong to it)")
    print(key)
    return 0


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    """The service's health (database, broker, live workers) and what this machine can train with."""
    from skill_adapter.doctor import doctor_report, format_doctor

    report = doctor_report(settings)
    print(json.dumps(report, indent=2, default=str) if args.json else format_doctor(report))
    return 0 if report["health"]["status"] == "ok" else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skill-adapter", description="Turn a SKILL.md into a LoRA adapter.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="the API plus one embedded Celery worker")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="the API alone (workers run elsewhere)")
    serve.add_argument(
        "--no-model-server", action="store_true", help="start no model server (/v1 then needs MODEL_SERVER_URL)"
    )
    serve.add_argument(
        "--model-server-port", type=int, default=None, help="port of the model server it starts (default: a free one)"
    )
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve a non-loopback host without any API key (only behind something that authenticates callers)",
    )
    serve.set_defaults(func=cmd_serve)

    serve_models = sub.add_parser("serve-models", help="the model server alone: OpenAI-compatible /v1")
    serve_models.add_argument("--host", default="127.0.0.1")
    serve_models.add_argument("--port", type=int, default=8001)
    serve_models.add_argument("--lazy", action="store_true", help="load the base model on the first request")
    serve_models.add_argument(
        "--insecure-no-auth", action="store_true", help="bind a non-loopback host (the model server checks no keys)"
    )
    serve_models.set_defaults(func=cmd_serve_models)

    export = sub.add_parser("export", help="merge a job's adapter into its base: a standalone model folder")
    export.add_argument("job_id", help="a succeeded job's id (or a skill name: its newest adapter)")
    export.add_argument("--merged", required=True, metavar="OUT", help="the folder to write")
    export.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    export.set_defaults(func=cmd_export)

    export_vllm = sub.add_parser("export-vllm", help="print the vllm serve command for the chosen adapters")
    export_vllm.add_argument("models", nargs="+", help="job ids or skill names")
    export_vllm.add_argument("--port", type=int, default=8000)
    export_vllm.add_argument("--json", action="store_true", help="print the command's parts as JSON")
    export_vllm.set_defaults(func=cmd_export_vllm)

    worker = sub.add_parser("worker", help="a Celery worker alone")
    worker.add_argument("--queues", default=None, help="comma-separated: training, evaluation (default: all)")
    worker.add_argument("--name", default=None, help="worker node name, e.g. gpu0@%%h")
    worker.set_defaults(func=cmd_worker)

    train = sub.add_parser("train", help="train one SKILL.md in the foreground")
    train.add_argument("skill", help="path to a SKILL.md (or its folder)")
    add_param_flags(train)
    train.add_argument(
        "--no-sample", dest="sample", action="store_false", help="skip the base-vs-adapter answer at the end"
    )
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="evaluate a succeeded job: base, base + SKILL.md, adapter")
    evaluate.add_argument("job_id")
    evaluate.add_argument("--max-new-tokens", type=int, help="new tokens per greedy generation")
    evaluate.add_argument("--limit", type=int, help="evaluate only the first N cases")
    evaluate.add_argument("--evals", help="an agentskills evals/evals.json to use instead of the held-out split")
    evaluate.add_argument("--show", action="store_true", help="print the latest report without running one")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.set_defaults(func=cmd_evaluate)

    preview = sub.add_parser("preview", help="show what a SKILL.md would train on, without training")
    preview.add_argument("skill", help="path to a SKILL.md (or its folder)")
    preview.add_argument("--seed", type=int)
    preview.add_argument("--max-seq-length", type=int)
    preview.add_argument("--examples", type=int, default=5, help="how many examples to print")
    preview.add_argument("--json", action="store_true", help="print the same JSON as POST /api/skills/preview")
    preview.set_defaults(func=cmd_preview)
    db = sub.add_parser("db", help="schema migrations: upgrade, current, stamp, revision")
    db.add_argument("action", choices=["upgrade", "current", "stamp", "revision"])
    db.add_argument("revision", nargs="?", help="upgrade or stamp to this revision (default: head)")
    db.add_argument("-m", "--message", help="revision: what the new migration does (developers)")
    db.set_defaults(func=cmd_db)

    keys = sub.add_parser("keys", help="API keys: create NAME [--admin], list, revoke NAME, adopt NAME")
    keys.add_argument("action", choices=["create", "list", "revoke", "adopt"])
    keys.add_argument("name", nargs="?", help="the key's name: it owns the jobs the key submits")
    keys.add_argument("--admin", action="store_true", help="create: the key sees and cancels every job")
    keys.add_argument(
        "--adopt", action="store_true", help="create: also give it the jobs without an owner (from before keys)"
    )
    keys.set_defaults(func=cmd_keys)

    doctor = sub.add_parser("doctor", help="health of the service and what this machine can train with")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from skill_adapter.quiet import silence_known_noise

    silence_known_noise()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    from skill_adapter.core.db import SchemaError

    try:
        return int(args.func(args, settings))
    except SchemaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
