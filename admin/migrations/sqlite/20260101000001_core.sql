-- Units, administrators, tokens with their append-only history, sessions and login records.
-- Instants are INTEGER microseconds since the Unix epoch (UTC).

CREATE TABLE units (
    id            INTEGER PRIMARY KEY,
    code          TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    short_name    TEXT,
    kind          TEXT    NOT NULL CHECK (kind IN ('committee', 'working_committee', 'general_branch', 'branch', 'leading_group', 'other')),
    parent_id     INTEGER REFERENCES units (id),
    -- Materialized path of ids ('/1/5/23/'): the subtree of P is path > P.path AND path < bound.
    path          TEXT    NOT NULL UNIQUE,
    depth         INTEGER NOT NULL,
    examinee      INTEGER NOT NULL DEFAULT 0 CHECK (examinee IN (0, 1)),
    active        INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    contact_name  TEXT,
    contact_phone TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX units_sibling_name ON units (coalesce(parent_id, 0), name);
CREATE INDEX units_parent ON units (parent_id);

CREATE TABLE administrators (
    id         INTEGER PRIMARY KEY,
    unit_id    INTEGER NOT NULL REFERENCES units (id),
    name       TEXT    NOT NULL,
    mobile     TEXT    NOT NULL CHECK (length(mobile) = 11),
    created_at INTEGER NOT NULL
);
CREATE INDEX administrators_unit ON administrators (unit_id);

CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY,
    serial       TEXT    NOT NULL UNIQUE,
    model        TEXT,
    manufacturer TEXT,
    cert_der     BLOB    NOT NULL,
    spki_sha256  BLOB    NOT NULL UNIQUE CHECK (length(spki_sha256) = 32),
    cert_serial  TEXT    NOT NULL,
    not_before   INTEGER NOT NULL,
    not_after    INTEGER NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('registered', 'active', 'suspended', 'lost', 'revoked')),
    unit_id      INTEGER REFERENCES units (id),
    replaced_by  INTEGER REFERENCES tokens (id),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX tokens_unit ON tokens (unit_id);

-- Every change to a token, with the status and unit after it: the state at any past instant
-- is the latest row at or before it.
CREATE TABLE token_events (
    id       INTEGER PRIMARY KEY,
    token_id INTEGER NOT NULL REFERENCES tokens (id),
    at       INTEGER NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('registered', 'bound', 'rebound', 'suspended', 'resumed', 'lost', 'revoked')),
    status   TEXT    NOT NULL CHECK (status IN ('registered', 'active', 'suspended', 'lost', 'revoked')),
    unit_id  INTEGER REFERENCES units (id),
    reason   TEXT    NOT NULL,
    actor    TEXT    NOT NULL
);
CREATE INDEX token_events_token_at ON token_events (token_id, at, id);
CREATE INDEX token_events_at ON token_events (at);
CREATE TRIGGER token_events_no_update BEFORE UPDATE ON token_events
BEGIN SELECT RAISE(ABORT, 'token_events is append-only'); END;
CREATE TRIGGER token_events_no_delete BEFORE DELETE ON token_events
BEGIN SELECT RAISE(ABORT, 'token_events is append-only'); END;

CREATE TABLE sessions (
    id         BLOB    PRIMARY KEY CHECK (length(id) = 16),
    token_id   INTEGER NOT NULL REFERENCES tokens (id),
    unit_id    INTEGER NOT NULL REFERENCES units (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at   INTEGER
);
CREATE INDEX sessions_token ON sessions (token_id);

CREATE TABLE login_records (
    id             INTEGER PRIMARY KEY,
    at             INTEGER NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('login', 'request')),
    -- 'success' or a refusal code (ukey_proto::api::Refusal).
    outcome        TEXT    NOT NULL,
    token_id       INTEGER REFERENCES tokens (id),
    unit_id        INTEGER REFERENCES units (id),
    spki_sha256    BLOB,
    claimed_serial TEXT,
    source         TEXT,
    client_version TEXT,
    session_id     BLOB REFERENCES sessions (id)
);
CREATE INDEX login_records_unit_at ON login_records (unit_id, at);
CREATE INDEX login_records_at ON login_records (at);
CREATE INDEX login_records_session ON login_records (session_id);
CREATE TRIGGER login_records_no_update BEFORE UPDATE ON login_records
BEGIN SELECT RAISE(ABORT, 'login_records is append-only'); END;
CREATE TRIGGER login_records_no_delete BEFORE DELETE ON login_records
BEGIN SELECT RAISE(ABORT, 'login_records is append-only'); END;
