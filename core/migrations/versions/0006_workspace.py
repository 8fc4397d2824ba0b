"""workspace: people who sign in, their sessions, OIDC sign-ins in flight, suggestion decisions, undo

Revision ID: 0006
Revises: 0005

- ``users``: local (argon2 password hash) or OpenID Connect (issuer + subject) accounts with a role.
- ``web_sessions``: server-side sessions, by the SHA-256 of the cookie's token, revocable.
- ``pending_sign_ins``: state (hashed), nonce and PKCE verifier of OIDC requests in flight.
- ``suggestion_decisions``: accepted and rejected "move these too" suggestions (constraints on clustering).
- ``audit_log.undone_by_id``: the undo entry that reversed a change.
- PostgreSQL only, where the ``pg_trgm`` extension can be made (it is a trusted extension from
  PostgreSQL 13): a trigram index on the redacted item text, so the workspace's searches (ILIKE
  '%term%') read the index instead of every text (on 100,000 items, 120-180 ms down to about 3 ms for
  a selective term; bench/RESULTS.md). Without the extension searches still work, only slower.
"""
import logging

from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'users',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('email', sa.String(320), nullable=False),
        sa.Column('name', sa.String(128), nullable=False),
        sa.Column('role', sa.String(16), nullable=False),
        sa.Column('password_hash', sa.String(256), nullable=True),
        sa.Column('oidc_issuer', sa.String(512), nullable=True),
        sa.Column('oidc_subject', sa.String(256), nullable=True),
        sa.Column('owner_id', sa.Integer(), sa.ForeignKey('owners.id', ondelete='SET NULL'), nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_sign_in_at', sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint('email'),
        sa.UniqueConstraint('oidc_issuer', 'oidc_subject', name='uq_user_oidc_identity'),
    )
    op.create_table(
        'web_sessions',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('token_hash', sa.String(64), nullable=False),
        sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', ondelete='CASCADE'), nullable=False),
        sa.Column('csrf_token', sa.String(64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('user_agent', sa.String(256), nullable=False),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_web_sessions_user_id', 'web_sessions', ['user_id'])
    op.create_table(
        'pending_sign_ins',
        sa.Column('state_hash', sa.String(64), primary_key=True),
        sa.Column('nonce', sa.String(128), nullable=False),
        sa.Column('code_verifier', sa.String(128), nullable=False),
        sa.Column('return_to', sa.String(512), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        'suggestion_decisions',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('item_id', sa.Integer(), sa.ForeignKey('feedback_items.id', ondelete='CASCADE'), nullable=False),
        sa.Column('theme_id', sa.Integer(), sa.ForeignKey('themes.id', ondelete='CASCADE'), nullable=False),
        sa.Column('accepted', sa.Boolean(), nullable=False),
        sa.Column('actor', sa.String(128), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('item_id', 'theme_id', name='uq_suggestion_item_theme'),
    )
    op.create_index('ix_suggestion_decisions_item_id', 'suggestion_decisions', ['item_id'])
    op.create_index('ix_suggestion_decisions_theme_id', 'suggestion_decisions', ['theme_id'])
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('undone_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_audit_log_undone_by', 'audit_log', ['undone_by_id'], ['id'])
    _text_search_index()


def _text_search_index() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return
    if not bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).scalar():
        logging.getLogger(__name__).warning("pg_trgm is not available: workspace searches read every text")
        return
    try:
        with bind.begin_nested():  # a savepoint: a refused extension must not undo the rest of the migration
            bind.execute(sa.text('CREATE EXTENSION IF NOT EXISTS pg_trgm'))
            bind.execute(sa.text('CREATE INDEX IF NOT EXISTS ix_feedback_items_text_trgm ON feedback_items '
                                 'USING gin (text_redacted gin_trgm_ops)'))
    except sa.exc.DBAPIError as error:
        logging.getLogger(__name__).warning("no trigram index (%s): workspace searches read every text", error)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP INDEX IF EXISTS ix_feedback_items_text_trgm')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_constraint('fk_audit_log_undone_by', type_='foreignkey')
        batch_op.drop_column('undone_by_id')
    op.drop_table('suggestion_decisions')
    op.drop_table('pending_sign_ins')
    op.drop_index('ix_web_sessions_user_id', table_name='web_sessions')
    op.drop_table('web_sessions')
    op.drop_table('users')
