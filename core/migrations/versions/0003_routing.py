"""routing: delivery retries and schedule, circuit breakers, tracker status, spike alerts, loop replies

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('consecutive_failures', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('external_status', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('status_checked_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_deliveries_next_attempt_at', ['next_attempt_at'], unique=False)
        batch_op.create_index('ix_deliveries_external_ref', ['external_ref'], unique=False)

    op.create_table('target_circuits',
    sa.Column('key', sa.String(length=256), nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('opened_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('spike_alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('theme_id', sa.Integer(), nullable=False),
    sa.Column('rule', sa.String(length=128), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['theme_id'], ['themes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('spike_alerts', schema=None) as batch_op:
        batch_op.create_index('ix_spike_alerts_theme_id', ['theme_id'], unique=False)
        batch_op.create_index('ix_spike_alerts_created_at', ['created_at'], unique=False)

    op.create_table('loop_replies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('theme_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=128), nullable=False),
    sa.Column('thread_ref', sa.String(length=512), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['theme_id'], ['themes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('theme_id', 'channel', 'thread_ref', name='uq_loop_reply_thread')
    )


def downgrade() -> None:
    op.drop_table('loop_replies')
    with op.batch_alter_table('spike_alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_spike_alerts_created_at')
        batch_op.drop_index('ix_spike_alerts_theme_id')
    op.drop_table('spike_alerts')
    op.drop_table('target_circuits')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_external_ref')
        batch_op.drop_index('ix_deliveries_next_attempt_at')
        batch_op.drop_column('status_checked_at')
        batch_op.drop_column('external_status')
        batch_op.drop_column('consecutive_failures')
        batch_op.drop_column('next_attempt_at')
