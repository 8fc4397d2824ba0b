"""embedding reuse and throughput: a normalised-text hash per item, and the worker's embedding batches

Revision ID: 0012
Revises: 0011

- ``feedback_items.text_hash``: SHA-256 of the item's shown text after NFKC, casefold and whitespace collapse
  (core/themes/text_hash.py), indexed: an item whose text was embedded before, by the same model, reuses that
  vector instead of being embedded again. Filled here for the items stored so far.
- ``embedding_batches``: one row per batch the worker embedded (how many texts, how long, which model, when),
  so ``/metrics`` in the API process reports the worker's throughput.
"""

from alembic import op
import sqlalchemy as sa

from core.themes.text_hash import text_hash

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

BACKFILL_ROWS = 2000


def upgrade() -> None:
    with op.batch_alter_table('feedback_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('text_hash', sa.String(64), nullable=True))
        batch_op.create_index('ix_feedback_items_text_hash', ['text_hash'], unique=False)
    _backfill_text_hashes()
    op.create_table(
        'embedding_batches',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('model', sa.String(128), nullable=False),
        sa.Column('texts', sa.Integer(), nullable=False),
        sa.Column('seconds', sa.Float(), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_embedding_batches_finished_at', 'embedding_batches', ['finished_at'], unique=False)


def _backfill_text_hashes() -> None:
    """Chunked by id, so a large table is never read into memory at once."""
    connection = op.get_bind()
    items = sa.table('feedback_items', sa.column('id', sa.Integer()), sa.column('text_redacted', sa.Text()),
                     sa.column('text_hash', sa.String(64)))
    last_id = 0
    while True:
        rows = connection.execute(sa.select(items.c.id, items.c.text_redacted).where(items.c.id > last_id)
                                  .order_by(items.c.id).limit(BACKFILL_ROWS)).all()
        if not rows:
            return
        connection.execute(items.update().where(items.c.id == sa.bindparam('item_id'))
                           .values(text_hash=sa.bindparam('hash')),
                           [{'item_id': item_id, 'hash': text_hash(text or '')} for item_id, text in rows])
        last_id = rows[-1][0]


def downgrade() -> None:
    op.drop_index('ix_embedding_batches_finished_at', table_name='embedding_batches')
    op.drop_table('embedding_batches')
    with op.batch_alter_table('feedback_items', schema=None) as batch_op:
        batch_op.drop_index('ix_feedback_items_text_hash')
        batch_op.drop_column('text_hash')
