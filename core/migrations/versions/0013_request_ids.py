"""request ids: the HTTP request behind each item, and when each ticket was last sent

Revision ID: 0013
Revises: 0011

- ``feedback_items.request_id``: the request (X-Request-ID) that created the item or last changed its text,
  so the worker's log lines name it when the item is embedded, themed and sent (core/logs.py). Null for
  items from imports and polls, and for items stored before this revision.
- ``deliveries.sent_at``: when the target last created or updated the ticket; the next send's log line
  names the items that joined the theme since then.
"""

from alembic import op
import sqlalchemy as sa

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('feedback_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(64), nullable=True))
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('sent_at')
    with op.batch_alter_table('feedback_items', schema=None) as batch_op:
        batch_op.drop_column('request_id')
