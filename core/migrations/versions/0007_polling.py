"""polled channels: cursors and pacing of polled channels (owned by the polling work)

Revision ID: 0007
Revises: 0006

- ``channel_poll_states``: one row per polled channel (removed with it): the poller's cursor (JSON),
  when it is next due (also the claim of a poll in progress), the last poll and success, consecutive
  failures and the last error, how long the source asked us to wait (429 ``Retry-After``), items stored.
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'channel_poll_states',
        sa.Column('channel_id', sa.Integer(), sa.ForeignKey('channels.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('cursor', sa.JSON(), nullable=False),
        sa.Column('next_poll_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_polled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('consecutive_failures', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('throttled_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('items_total', sa.Integer(), nullable=False),
    )
    op.create_index('ix_channel_poll_states_next_poll_at', 'channel_poll_states', ['next_poll_at'])


def downgrade() -> None:
    op.drop_index('ix_channel_poll_states_next_poll_at', table_name='channel_poll_states')
    op.drop_table('channel_poll_states')
