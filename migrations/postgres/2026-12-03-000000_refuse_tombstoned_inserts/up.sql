-- No row behind a tombstone, whoever inserts it, in one statement. The
-- check runs after the row is inserted: by then an insert that met a
-- concurrent delete of the same sub has waited on the unique index for
-- that delete to commit, and a trigger function's query takes a fresh
-- snapshot (read committed), so it sees the delete's tombstone.
CREATE FUNCTION usergate_refuse_tombstoned_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM user_tombstones WHERE sub = NEW.sub) THEN
        RAISE EXCEPTION 'usergate: this subject is tombstoned';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_refuse_tombstoned_insert
    AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION usergate_refuse_tombstoned_insert();
