-- An audit log as the first released version of the audit sink writes it
-- (SQLite, table_prefix audit_): TestReadsFirstLogFormat checks that the
-- sink and Search still read, search and extend it. Frozen: never edit.
CREATE TABLE audit_events (
	id TEXT PRIMARY KEY,
	type TEXT NOT NULL,
	source TEXT NOT NULL,
	subject TEXT,
	time TEXT,
	partition_key TEXT,
	data TEXT,
	data_base64 TEXT,
	datacontenttype TEXT,
	dataschema TEXT,
	traceparent TEXT,
	logged_at TEXT NOT NULL
);
CREATE INDEX audit_events_time ON audit_events (time);
CREATE INDEX audit_events_type_time ON audit_events (type, time);
CREATE INDEX audit_events_subject_time ON audit_events (subject, time);
CREATE INDEX audit_events_logged_at ON audit_events (logged_at);
CREATE TABLE audit_replays (
	id TEXT PRIMARY KEY,
	at TEXT NOT NULL,
	who TEXT NOT NULL,
	sink TEXT NOT NULL,
	filter TEXT NOT NULL,
	count BIGINT NOT NULL
);
CREATE INDEX audit_replays_at ON audit_replays (at);
INSERT INTO audit_events (id, type, source, subject, time, partition_key, data, data_base64, datacontenttype, dataschema, traceparent, logged_at) VALUES ('7f1c8a2e-8d0b-5a57-9f3e-7b1e0c4d2a91', 'com.example.order.placed', '/tributary/erp_orders', 'A-1001', '2026-03-02T08:30:15.123456000Z', 'A-1001', '{"order_id":"A-1001","total":"99.90"}', NULL, 'application/json', 'https://schemas.example.com/order/placed/1', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', '2026-03-02T08:32:00.000000000Z');
INSERT INTO audit_events (id, type, source, subject, time, partition_key, data, data_base64, datacontenttype, dataschema, traceparent, logged_at) VALUES ('0b3e5c1d-2f4a-5b6c-8d7e-9f0a1b2c3d4e', 'com.example.file.received', '/tributary/drops', NULL, '2026-03-02T08:31:00.000000000Z', NULL, NULL, 'AAEC/w==', 'application/octet-stream', NULL, NULL, '2026-03-02T08:32:00.000000000Z');
INSERT INTO audit_replays (id, at, who, sink, filter, count) VALUES ('r-1', '2026-03-03T09:00:00.000000000Z', 'alice', 'warehouse', '{"types":["com.example.order.placed"],"since":"2026-03-02T00:00:00Z"}', 1);
