"""One metric point and one step log line per job and step: a resumed run replaces, never duplicates.

Existing duplicates (from resumes before this revision) are removed first, keeping the newest row of each
(job, step): the one the resumed run wrote.

Revision ID: 0003
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM metric_points WHERE id NOT IN "
        "(SELECT max_id FROM (SELECT MAX(id) AS max_id FROM metric_points GROUP BY job_id, step) AS newest)"
    )
    with op.batch_alter_table("metric_points", schema=None) as batch_op:
        batch_op.create_index("ux_metric_points_job_id_step", ["job_id", "step"], unique=True)
    with op.batch_alter_table("log_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("step", sa.Integer(), nullable=True))
        batch_op.create_index("ux_log_lines_job_id_step", ["job_id", "step"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("log_lines", schema=None) as batch_op:
        batch_op.drop_index("ux_log_lines_job_id_step")
        batch_op.drop_column("step")
    with op.batch_alter_table("metric_points", schema=None) as batch_op:
        batch_op.drop_index("ux_metric_points_job_id_step")
