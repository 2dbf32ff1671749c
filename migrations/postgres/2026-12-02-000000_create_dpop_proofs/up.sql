-- The DPoP proofs accepted and not yet expired, shared by every replica:
-- a proof's key and jti (hashed) are recorded once; a second insert of the
-- same proof conflicts, and the proof is refused as a replay.
CREATE TABLE dpop_proofs (
    proof_key VARCHAR(64) PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX dpop_proofs_expires_at ON dpop_proofs (expires_at);
