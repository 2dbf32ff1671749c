DROP TRIGGER users_refuse_tombstoned_insert ON users;
DROP FUNCTION usergate_refuse_tombstoned_insert();
