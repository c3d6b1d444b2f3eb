-- Operator accounts, roles, sessions and the security policy (issue 5), and the audit trail.

CREATE TABLE operator_accounts (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username            TEXT   NOT NULL UNIQUE CHECK (username = lower(username) AND length(username) BETWEEN 3 AND 32),
    display_name        TEXT   NOT NULL,
    -- The top of the account's subtree; NULL means every unit.
    unit_id             BIGINT REFERENCES units (id),
    status              TEXT   NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    -- Argon2id PHC string; NULL before the first password and after a reset.
    password_hash       TEXT,
    password_changed_at TIMESTAMPTZ,
    must_change         BOOLEAN NOT NULL DEFAULT TRUE,
    failed_count        INTEGER NOT NULL DEFAULT 0,
    locked_until        TIMESTAMPTZ,
    last_login_at       TIMESTAMPTZ,
    last_login_source   TEXT,
    -- SHA-256 of a one-time secret (bootstrap, activation or reset), until used or expired.
    secret_sha256       BYTEA CHECK (secret_sha256 IS NULL OR length(secret_sha256) = 32),
    secret_purpose      TEXT CHECK (secret_purpose IN ('bootstrap', 'activation', 'reset')),
    secret_expires_at   TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);

CREATE TABLE account_roles (
    account_id BIGINT NOT NULL REFERENCES operator_accounts (id),
    role       TEXT   NOT NULL CHECK (role IN ('sysadmin', 'secadmin', 'auditor', 'operator', 'assessor')),
    granted_at TIMESTAMPTZ NOT NULL,
    granted_by TEXT   NOT NULL,
    PRIMARY KEY (account_id, role)
);
-- 三员: an officer role is always the account's only role (the service checks first, under a
-- lock on the account row; these are the last line).
CREATE UNIQUE INDEX account_roles_one_officer ON account_roles (account_id)
    WHERE role IN ('sysadmin', 'secadmin', 'auditor');
CREATE FUNCTION ukey_officer_alone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM account_roles r WHERE r.account_id = NEW.account_id
               AND (r.role IN ('sysadmin', 'secadmin', 'auditor')
                    OR NEW.role IN ('sysadmin', 'secadmin', 'auditor'))) THEN
        RAISE EXCEPTION 'an officer role (sysadmin, secadmin, auditor) is held alone';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER account_roles_officer_alone BEFORE INSERT ON account_roles
    FOR EACH ROW EXECUTE FUNCTION ukey_officer_alone();

CREATE TABLE password_history (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    BIGINT NOT NULL REFERENCES operator_accounts (id),
    password_hash TEXT   NOT NULL,
    set_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX password_history_account ON password_history (account_id, id);

CREATE TABLE operator_sessions (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- SHA-256 of the session token; the token itself is never stored.
    token_sha256 BYTEA  NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    account_id   BIGINT NOT NULL REFERENCES operator_accounts (id),
    -- The U-Key the login came with; every request of the session must come with it.
    token_id     BIGINT REFERENCES tokens (id),
    restricted   BOOLEAN NOT NULL,
    via_secret   BOOLEAN NOT NULL,
    source       TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    ended_at     TIMESTAMPTZ,
    end_reason   TEXT
);
CREATE INDEX operator_sessions_account ON operator_sessions (account_id, ended_at);

CREATE TABLE security_policy (
    id                    INTEGER PRIMARY KEY CHECK (id = 1),
    lockout_threshold     INTEGER NOT NULL,
    lockout_minutes       INTEGER NOT NULL,
    password_max_age_days INTEGER NOT NULL,
    password_history      INTEGER NOT NULL,
    idle_minutes          INTEGER NOT NULL,
    absolute_hours        INTEGER NOT NULL,
    updated_at            TIMESTAMPTZ,
    updated_by            TEXT
);
INSERT INTO security_policy (id, lockout_threshold, lockout_minutes, password_max_age_days,
    password_history, idle_minutes, absolute_hours) VALUES (1, 5, 30, 90, 5, 15, 12);

-- The audit trail: a hash chain (each MAC covers the record and the previous MAC).
CREATE TABLE audit_log (
    id             BIGINT PRIMARY KEY,
    kind           TEXT   NOT NULL,
    at             TIMESTAMPTZ NOT NULL,
    actor          TEXT   NOT NULL,
    actor_roles    TEXT   NOT NULL,
    action         TEXT   NOT NULL,
    target         TEXT,
    unit_code      TEXT,
    unit_path      TEXT COLLATE "C",
    result         TEXT   NOT NULL,
    source         TEXT,
    detail         TEXT   NOT NULL,
    sealed_through BIGINT,
    sealed_mac     BYTEA,
    prev_mac       BYTEA  NOT NULL,
    mac            BYTEA  NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_unit_path ON audit_log (unit_path, id);
CREATE INDEX audit_log_sealed ON audit_log (sealed_through) WHERE kind = 'checkpoint';
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION ukey_append_only();
-- Only the retention job deletes: records older than 180 days that a checkpoint seals.
CREATE FUNCTION ukey_audit_sealed_deletes_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.at >= now() - interval '180 days'
       OR NOT EXISTS (SELECT 1 FROM audit_log c
                      WHERE c.kind = 'checkpoint' AND c.sealed_through >= OLD.id) THEN
        RAISE EXCEPTION 'audit_log is append-only: only sealed records older than 180 days are deleted';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER audit_log_sealed_deletes_only BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION ukey_audit_sealed_deletes_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION ukey_append_only();
CREATE TRIGGER token_events_no_truncate BEFORE TRUNCATE ON token_events
    FOR EACH STATEMENT EXECUTE FUNCTION ukey_append_only();
CREATE TRIGGER login_records_no_truncate BEFORE TRUNCATE ON login_records
    FOR EACH STATEMENT EXECUTE FUNCTION ukey_append_only();

-- The chain head: it only moves forward.
CREATE TABLE audit_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_id  BIGINT NOT NULL,
    last_mac BYTEA  NOT NULL,
    key_id   BYTEA,
    head_mac BYTEA
);
INSERT INTO audit_head (id, last_id, last_mac) VALUES (1, 0, decode(repeat('00', 32), 'hex'));
CREATE FUNCTION ukey_audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.last_id <= OLD.last_id OR NEW.id <> OLD.id THEN
        RAISE EXCEPTION 'the audit chain head only moves forward';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_head_forward_only BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION ukey_audit_head_forward_only();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION ukey_append_only();
