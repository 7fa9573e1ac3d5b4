"""Initial schema: organisations, members, keys, attestations, guard summaries, alerts,
webhooks, incidents and vulnerability reports.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from redline.observatory.tables import UTCDateTime

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('orgs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('share_excerpts', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug')
    )
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=True),
    sa.Column('rule', sa.String(length=32), nullable=False),
    sa.Column('red_line', sa.String(length=200), nullable=True),
    sa.Column('category', sa.String(length=200), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=400), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key')
    )
    op.create_index(op.f('ix_alerts_org_id'), 'alerts',
                    ['org_id'], unique=False)
    op.create_table('attestations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.String(length=200), nullable=False),
    sa.Column('model', sa.String(length=300), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.Column('envelope', sa.JSON(), nullable=False),
    sa.Column('statement', sa.JSON(), nullable=False),
    sa.Column('received_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('digest')
    )
    op.create_index(op.f('ix_attestations_org_id'), 'attestations',
                    ['org_id'], unique=False)
    op.create_table('event_summaries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('guard_id', sa.String(length=200), nullable=False),
    sa.Column('policy_id', sa.String(length=200), nullable=False),
    sa.Column('window_start', UTCDateTime(), nullable=False),
    sa.Column('window_end', UTCDateTime(), nullable=False),
    sa.Column('checks', sa.BigInteger(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('excerpts', sa.JSON(), nullable=False),
    sa.Column('received_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('org_id', 'guard_id', 'window_start')
    )
    op.create_index(op.f('ix_event_summaries_org_id'), 'event_summaries',
                    ['org_id'], unique=False)
    op.create_index(op.f('ix_event_summaries_window_end'), 'event_summaries',
                    ['window_end'], unique=False)
    op.create_table('incidents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('harm_class', sa.String(length=48), nullable=False),
    sa.Column('aware_at', UTCDateTime(), nullable=False),
    sa.Column('resolved_at', UTCDateTime(), nullable=True),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_incidents_org_id'), 'incidents',
                    ['org_id'], unique=False)
    op.create_table('members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_members_org_id'), 'members',
                    ['org_id'], unique=False)
    op.create_table('signing_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('public_pem', sa.Text(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('revoked_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_id')
    )
    op.create_index(op.f('ix_signing_keys_org_id'), 'signing_keys',
                    ['org_id'], unique=False)
    op.create_table('vuln_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reporter_org_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('categories', sa.JSON(), nullable=False),
    sa.Column('affected', sa.JSON(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('embargo_days', sa.Integer(), nullable=False),
    sa.Column('embargo_until', UTCDateTime(), nullable=True),
    sa.Column('cve_id', sa.String(length=32), nullable=True),
    sa.Column('history', sa.JSON(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('published_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['reporter_org_id'], ['orgs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_vuln_reports_reporter_org_id'), 'vuln_reports',
                    ['reporter_org_id'], unique=False)
    op.create_index(op.f('ix_vuln_reports_state'), 'vuln_reports',
                    ['state'], unique=False)
    op.create_table('webhooks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('secret', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_webhooks_org_id'), 'webhooks',
                    ['org_id'], unique=False)
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('revoked_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index(op.f('ix_api_keys_member_id'), 'api_keys',
                    ['member_id'], unique=False)
    op.create_table('disclosures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('attestation_id', sa.Integer(), nullable=False),
    sa.Column('bundle_digest', sa.String(length=64), nullable=False),
    sa.Column('bundle', sa.JSON(), nullable=False),
    sa.Column('revealed', sa.Integer(), nullable=False),
    sa.Column('received_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['attestation_id'], ['attestations.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('bundle_digest')
    )
    op.create_index(op.f('ix_disclosures_attestation_id'), 'disclosures',
                    ['attestation_id'], unique=False)
    op.create_table('report_vendors',
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], ),
    sa.ForeignKeyConstraint(['report_id'], ['vuln_reports.id'], ),
    sa.PrimaryKeyConstraint('report_id', 'org_id')
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('report_vendors')
    op.drop_index(op.f('ix_disclosures_attestation_id'), table_name='disclosures')
    op.drop_table('disclosures')
    op.drop_index(op.f('ix_api_keys_member_id'), table_name='api_keys')
    op.drop_table('api_keys')
    op.drop_index(op.f('ix_webhooks_org_id'), table_name='webhooks')
    op.drop_table('webhooks')
    op.drop_index(op.f('ix_vuln_reports_state'), table_name='vuln_reports')
    op.drop_index(op.f('ix_vuln_reports_reporter_org_id'), table_name='vuln_reports')
    op.drop_table('vuln_reports')
    op.drop_index(op.f('ix_signing_keys_org_id'), table_name='signing_keys')
    op.drop_table('signing_keys')
    op.drop_index(op.f('ix_members_org_id'), table_name='members')
    op.drop_table('members')
    op.drop_index(op.f('ix_incidents_org_id'), table_name='incidents')
    op.drop_table('incidents')
    op.drop_index(op.f('ix_event_summaries_window_end'), table_name='event_summaries')
    op.drop_index(op.f('ix_event_summaries_org_id'), table_name='event_summaries')
    op.drop_table('event_summaries')
    op.drop_index(op.f('ix_attestations_org_id'), table_name='attestations')
    op.drop_table('attestations')
    op.drop_index(op.f('ix_alerts_org_id'), table_name='alerts')
    op.drop_table('alerts')
    op.drop_table('orgs')
