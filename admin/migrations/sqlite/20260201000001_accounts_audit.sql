-- Operator accounts, roles, sessions and the security policy (issue 5), and the audit trail.
-- Instants are INTEGER microseconds since the Unix epoch (UTC).

CREATE TABLE operator_accounts (
    id                  INTEGER PRIMARY KEY,
    username            TEXT    NOT NULL UNIQUE CHECK (username = lower(username) AND length(username) BETWEEN 3 AND 32),
    display_name        TEXT    NOT NULL,
    -- The top of the account's subtree; NULL means every unit.
    unit_id             INTEGER REFERENCES units (id),
    status              TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    -- Argon2id PHC string; NULL before the first password and after a reset.
    password_hash       TEXT,
    password_changed_at INTEGER,
    must_change         INTEGER NOT NULL DEFAULT 1 CHECK (must_change IN (0, 1)),
    failed_count        INTEGER NOT NULL DEFAULT 0,
    locked_until        INTEGER,
    last_login_at       INTEGER,
    last_login_source   TEXT,
    -- SHA-256 of a one-time secret (bootstrap, activation or reset), until used or expired.
    secret_sha256       BLOB CHECK (secret_sha256 IS NULL OR length(secret_sha256) = 32),
    secret_purpose      TEXT CHECK (secret_purpose IN ('bootstrap', 'activation', 'reset')),
    secret_expires_at   INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

CREATE TABLE account_roles (
    account_id INTEGER NOT NULL REFERENCES operator_accounts (id),
    role       TEXT    NOT NULL CHECK (role IN ('sysadmin', 'secadmin', 'auditor', 'operator', 'assessor')),
    granted_at INTEGER NOT NULL,
    granted_by TEXT    NOT NULL,
    PRIMARY KEY (account_id, role)
);
-- 三员: an officer role is always the account's only role (the service checks first; these
-- are the last line).
CREATE UNIQUE INDEX account_roles_one_officer ON account_roles (account_id)
    WHERE role IN ('sysadmin', 'secadmin', 'auditor');
CREATE TRIGGER account_roles_officer_alone BEFORE INSERT ON account_roles
WHEN EXISTS (SELECT 1 FROM account_roles r WHERE r.account_id = NEW.account_id
             AND (r.role IN ('sysadmin', 'secadmin', 'auditor') OR NEW.role IN ('sysadmin', 'secadmin', 'auditor')))
BEGIN SELECT RAISE(ABORT, 'an officer role (sysadmin, secadmin, auditor) is held alone'); END;

CREATE TABLE password_history (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES operator_accounts (id),
    password_hash TEXT    NOT NULL,
    set_at        INTEGER NOT NULL
);
CREATE INDEX password_history_account ON password_history (account_id, id);

CREATE TABLE operator_sessions (
    id           INTEGER PRIMARY KEY,
    -- SHA-256 of the session token; the token itself is never stored.
    token_sha256 BLOB    NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    account_id   INTEGER NOT NULL REFERENCES operator_accounts (id),
    -- The U-Key the login came with; every request of the session must come with it.
    token_id     INTEGER REFERENCES tokens (id),
    restricted   INTEGER NOT NULL CHECK (restricted IN (0, 1)),
    via_secret   INTEGER NOT NULL CHECK (via_secret IN (0, 1)),
    source       TEXT,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    ended_at     INTEGER,
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
    updated_at            INTEGER,
    updated_by            TEXT
);
INSERT INTO security_policy (id, lockout_threshold, lockout_minutes, password_max_age_days,
    password_history, idle_minutes, absolute_hours) VALUES (1, 5, 30, 90, 5, 15, 12);

-- The audit trail: a hash chain (each MAC covers the record and the previous MAC).
CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY,
    kind           TEXT    NOT NULL,
    at             INTEGER NOT NULL,
    actor          TEXT    NOT NULL,
    actor_roles    TEXT    NOT NULL,
    action         TEXT    NOT NULL,
    target         TEXT,
    unit_code      TEXT,
    unit_path      TEXT,
    result         TEXT    NOT NULL,
    source         TEXT,
    detail         TEXT    NOT NULL,
    sealed_through INTEGER,
    sealed_mac     BLOB,
    prev_mac       BLOB    NOT NULL,
    mac            BLOB    NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_unit_path ON audit_log (unit_path, id);
CREATE INDEX audit_log_sealed ON audit_log (sealed_through) WHERE kind = 'checkpoint';
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
-- Only the retention job deletes: records older than 180 days that a checkpoint seals.
CREATE TRIGGER audit_log_sealed_deletes_only BEFORE DELETE ON audit_log
WHEN OLD.at >= (CAST(strftime('%s', 'now') AS INTEGER) - 180 * 86400) * 1000000
  OR NOT EXISTS (SELECT 1 FROM audit_log c WHERE c.kind = 'checkpoint' AND c.sealed_through >= OLD.id)
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: only sealed records older than 180 days are deleted'); END;

-- The chain head: it only moves forward.
CREATE TABLE audit_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_id  INTEGER NOT NULL,
    last_mac BLOB    NOT NULL,
    key_id   BLOB,
    head_mac BLOB
);
INSERT INTO audit_head (id, last_id, last_mac) VALUES (1, 0, zeroblob(32));
CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head
WHEN NEW.last_id <= OLD.last_id OR NEW.id <> OLD.id
BEGIN SELECT RAISE(ABORT, 'the audit chain head only moves forward'); END;
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN SELECT RAISE(ABORT, 'the audit chain head cannot be deleted'); END;
