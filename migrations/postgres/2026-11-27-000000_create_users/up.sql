CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    sub VARCHAR(255) NOT NULL UNIQUE,
    email VARCHAR(254),
    name VARCHAR(200),
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP
);

CREATE INDEX users_created_at_idx ON users (created_at, id);
CREATE INDEX users_email_idx ON users (email, id);
