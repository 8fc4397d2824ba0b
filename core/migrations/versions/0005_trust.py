"""trust: API keys get scopes and bound channels; items remember their source's edit time

Revision ID: 0005
Revises: 0004

- ``api_keys.scopes``: a JSON list drawn from admin, pm, intake, read. Existing admin keys become
  ``["admin"]``; the old "member" keys keep what they could do (review and send feedback) as
  ``["pm", "intake"]``.
- ``api_keys.channels``: for intake keys, the channel names they may write to (NULL: any API channel).
- ``feedback_items.source_updated_at``: when the source last edited the item, so an older edit (a
  replayed or late delivery) never overwrites a newer text.
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scopes', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('channels', sa.JSON(), nullable=True))
    keys = sa.table('api_keys', sa.column('role', sa.String), sa.column('scopes', sa.JSON))
    op.execute(keys.update().where(keys.c.role == 'admin').values(scopes=['admin']))
    op.execute(keys.update().where(keys.c.role != 'admin').values(scopes=['pm', 'intake']))
    with op.batch_alter_table('feedback_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_updated_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('feedback_items', schema=None) as batch_op:
        batch_op.drop_column('source_updated_at')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('channels')
        batch_op.drop_column('scopes')
