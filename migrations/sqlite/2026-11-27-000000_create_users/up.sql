CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    sub TEXT NOT NULL UNIQUE CHECK (length(sub) BETWEEN 1 AND 255),
    email TEXT CHECK (email IS NULL OR length(email) <= 254),
    name TEXT CHECK (name IS NULL OR length(name) <= 200),
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP
);

CREATE INDEX users_created_at_idx ON users (created_at, id);
CREATE INDEX users_email_idx ON users (email, id);
