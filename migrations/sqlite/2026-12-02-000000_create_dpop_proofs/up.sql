-- The same table as on PostgreSQL, so that both backends keep one schema.
-- A SQLite file serves one process, which remembers proofs in memory: the
-- table stays empty there.
CREATE TABLE dpop_proofs (
    proof_key TEXT PRIMARY KEY NOT NULL CHECK (length(proof_key) = 64),
    expires_at BIGINT NOT NULL
);
CREATE INDEX dpop_proofs_expires_at ON dpop_proofs (expires_at);
