-- Units, administrators, tokens with their append-only history, sessions and login records.

CREATE TABLE units (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code          TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    short_name    TEXT,
    kind          TEXT    NOT NULL CHECK (kind IN ('committee', 'working_committee', 'general_branch', 'branch', 'leading_group', 'other')),
    parent_id     BIGINT  REFERENCES units (id),
    -- Materialized path of ids ('/1/5/23/'), compared bytewise: the subtree of P is
    -- path > P.path AND path < bound, one range scan of this column's index.
    path          TEXT    COLLATE "C" NOT NULL UNIQUE,
    depth         INTEGER NOT NULL,
    examinee      BOOLEAN NOT NULL DEFAULT FALSE,
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    contact_name  TEXT,
    contact_phone TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX units_sibling_name ON units (coalesce(parent_id, 0), name);
CREATE INDEX units_parent ON units (parent_id);

CREATE TABLE administrators (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    unit_id    BIGINT NOT NULL REFERENCES units (id),
    name       TEXT   NOT NULL,
    mobile     TEXT   NOT NULL CHECK (mobile ~ '^1[3-9][0-9]{9}$'),
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX administrators_unit ON administrators (unit_id);

CREATE TABLE tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    serial       TEXT   NOT NULL UNIQUE,
    model        TEXT,
    manufacturer TEXT,
    cert_der     BYTEA  NOT NULL,
    spki_sha256  BYTEA  NOT NULL UNIQUE CHECK (length(spki_sha256) = 32),
    cert_serial  TEXT   NOT NULL,
    not_before   TIMESTAMPTZ NOT NULL,
    not_after    TIMESTAMPTZ NOT NULL,
    status       TEXT   NOT NULL CHECK (status IN ('registered', 'active', 'suspended', 'lost', 'revoked')),
    unit_id      BIGINT REFERENCES units (id),
    replaced_by  BIGINT REFERENCES tokens (id),
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX tokens_unit ON tokens (unit_id);

CREATE TABLE token_events (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_id BIGINT NOT NULL REFERENCES tokens (id),
    at       TIMESTAMPTZ NOT NULL,
    kind     TEXT   NOT NULL CHECK (kind IN ('registered', 'bound', 'rebound', 'suspended', 'resumed', 'lost', 'revoked')),
    status   TEXT   NOT NULL CHECK (status IN ('registered', 'active', 'suspended', 'lost', 'revoked')),
    unit_id  BIGINT REFERENCES units (id),
    reason   TEXT   NOT NULL,
    actor    TEXT   NOT NULL
);
CREATE INDEX token_events_token_at ON token_events (token_id, at, id);
CREATE INDEX token_events_at ON token_events (at);

CREATE FUNCTION ukey_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER token_events_append_only BEFORE UPDATE OR DELETE ON token_events
    FOR EACH ROW EXECUTE FUNCTION ukey_append_only();

CREATE TABLE sessions (
    id         UUID   PRIMARY KEY,
    token_id   BIGINT NOT NULL REFERENCES tokens (id),
    unit_id    BIGINT NOT NULL REFERENCES units (id),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    ended_at   TIMESTAMPTZ
);
CREATE INDEX sessions_token ON sessions (token_id);

CREATE TABLE login_records (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             TIMESTAMPTZ NOT NULL,
    kind           TEXT   NOT NULL CHECK (kind IN ('login', 'request')),
    outcome        TEXT   NOT NULL,
    token_id       BIGINT REFERENCES tokens (id),
    unit_id        BIGINT REFERENCES units (id),
    spki_sha256    BYTEA,
    claimed_serial TEXT,
    source         TEXT,
    client_version TEXT,
    session_id     UUID REFERENCES sessions (id)
);
CREATE INDEX login_records_unit_at ON login_records (unit_id, at);
CREATE INDEX login_records_at ON login_records (at);
CREATE INDEX login_records_session ON login_records (session_id);
CREATE TRIGGER login_records_append_only BEFORE UPDATE OR DELETE ON login_records
    FOR EACH ROW EXECUTE FUNCTION ukey_append_only();
