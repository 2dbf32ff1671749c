-- The subjects an admin deleted: their tokens must not create a row again
-- until an admin creates the user anew.
CREATE TABLE user_tombstones (
    sub TEXT PRIMARY KEY NOT NULL CHECK (length(sub) BETWEEN 1 AND 255),
    deleted_at TIMESTAMP NOT NULL
);
