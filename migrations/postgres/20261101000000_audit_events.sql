-- The audit trail. Same columns, names and meanings as migrations/sqlite.
-- Times are RFC 3339 UTC text with six fractional digits (2026-11-05T10:00:00.123456Z):
-- fixed width, so text comparison is time comparison in both databases.
CREATE TABLE IF NOT EXISTS audit_events (
    id             TEXT    NOT NULL PRIMARY KEY,
    decision_id    TEXT,
    ts             TEXT    NOT NULL,
    instance       TEXT    NOT NULL,
    seq            BIGINT  NOT NULL,
    kind           TEXT    NOT NULL,
    route_id       TEXT,
    method         TEXT,
    host           TEXT,
    path           TEXT,
    query          TEXT,
    client_ip      TEXT,
    user_agent     TEXT,
    auth_method    TEXT,
    subject        TEXT,
    email          TEXT,
    issuer         TEXT,
    provider       TEXT,
    groups         TEXT,
    decision       TEXT,
    rule           TEXT,
    reasons        TEXT,
    policy_version TEXT,
    status         BIGINT ,
    latency_us     BIGINT ,
    upstream       TEXT,
    detail         TEXT,
    prev_hash      TEXT    NOT NULL,
    hash           TEXT    NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS audit_events_instance_seq ON audit_events (instance, seq);
CREATE INDEX IF NOT EXISTS audit_events_ts ON audit_events (ts);
CREATE INDEX IF NOT EXISTS audit_events_decision_id ON audit_events (decision_id);
CREATE INDEX IF NOT EXISTS audit_events_subject ON audit_events (subject);
CREATE INDEX IF NOT EXISTS audit_events_route_id ON audit_events (route_id);

-- Where each instance's chain starts after the retention job deleted its oldest events.
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    instance TEXT    NOT NULL PRIMARY KEY,
    seq      BIGINT  NOT NULL,
    hash     TEXT    NOT NULL,
    ts       TEXT    NOT NULL
);
