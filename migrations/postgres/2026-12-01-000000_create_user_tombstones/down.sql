DROP TABLE user_tombstones;
