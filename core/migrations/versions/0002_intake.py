"""intake channels: delivery ids, duplicate sightings, tombstones, import progress, impact columns

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('feedback_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('customer_tier', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('account_value', sa.Float(), nullable=True))
        batch_op.create_index(batch_op.f('ix_feedback_items_content_hash'), ['content_hash'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=128), nullable=False),
    sa.Column('delivery_id', sa.String(length=256), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('channel', 'delivery_id', name='uq_delivery_channel_id')
    )
    op.create_table('item_sightings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=128), nullable=False),
    sa.Column('external_id', sa.String(length=256), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=True),
    sa.Column('author_pseudonym', sa.String(length=64), nullable=True),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['feedback_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('channel', 'external_id', name='uq_sighting_channel_external_id')
    )
    with op.batch_alter_table('item_sightings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_item_sightings_item_id'), ['item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_item_sightings_author_pseudonym'), ['author_pseudonym'], unique=False)
    op.create_table('item_tombstones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=128), nullable=False),
    sa.Column('external_id', sa.String(length=256), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('channel', 'external_id', name='uq_tombstone_channel_external_id')
    )
    op.create_table('import_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=128), nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('file_name', sa.String(length=512), nullable=False),
    sa.Column('rows_total', sa.Integer(), nullable=False),
    sa.Column('rows_done', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('channel', 'file_sha256', name='uq_import_channel_file')
    )


def downgrade() -> None:
    op.drop_table('import_runs')
    op.drop_table('item_tombstones')
    with op.batch_alter_table('item_sightings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_item_sightings_author_pseudonym'))
        batch_op.drop_index(batch_op.f('ix_item_sightings_item_id'))
    op.drop_table('item_sightings')
    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('feedback_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_items_content_hash'))
        batch_op.drop_column('account_value')
        batch_op.drop_column('customer_tier')
        batch_op.drop_column('content_hash')
