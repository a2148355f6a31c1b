DROP TABLE IF EXISTS store_probe;
