-- No row behind a tombstone, whoever inserts it, in one statement (it holds
-- the write lock throughout).
CREATE TRIGGER users_refuse_tombstoned_insert
    AFTER INSERT ON users
    WHEN EXISTS (SELECT 1 FROM user_tombstones WHERE sub = NEW.sub)
BEGIN
    SELECT RAISE(ABORT, 'usergate: this subject is tombstoned');
END;
