-- The subjects an admin deleted: their tokens must not create a row again
-- until an admin creates the user anew.
CREATE TABLE user_tombstones (
    sub VARCHAR(255) PRIMARY KEY,
    deleted_at TIMESTAMP NOT NULL
);
