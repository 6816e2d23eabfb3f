-- Rows as the scheduler of main at b46987e wrote them: a completed PROCESS, a failed and a
-- pending command, the audit trail, the rack and its changes. Portable SQL (SQLite, PostgreSQL,
-- MariaDB); ids are assigned by each table's auto-increment on a fresh database. Frozen.
INSERT INTO commands (kind, status, priority, source_slot, target_slot, flavor, workpiece_id, step, message, cancel_requested, created_at, started_at, finished_at) VALUES (1, 2, 0, 'A1', 'A1', 'CHOCO', 'WP001', '', 'completed', FALSE, '2024-03-01 12:00:00.250000', '2024-03-01 12:00:00.400000', '2024-03-01 12:01:02.123456');
INSERT INTO commands (kind, status, priority, source_slot, target_slot, flavor, workpiece_id, step, message, cancel_requested, created_at, started_at, finished_at) VALUES (2, 3, 5, '', 'C1', 'VANILLA', 'WP007', 'conveyor load entry', 'conveyor: motor failed: CONV_M1 — Fehler 🔥', FALSE, '2024-03-01 12:05:00.000001', '2024-03-01 12:05:00.500000', '2024-03-01 12:05:03.000000');
INSERT INTO commands (kind, status, priority, source_slot, target_slot, flavor, workpiece_id, step, message, cancel_requested, created_at, started_at, finished_at) VALUES (3, 0, -2, 'B1', '', 'CHOCO', 'WP004', '', 'queued', TRUE, '2024-03-01 12:06:00.999999', NULL, NULL);
INSERT INTO command_events (command_id, from_status, to_status, step, reason, at) VALUES (1, NULL, 0, '', 'queued', '2024-03-01 12:00:00.250000');
INSERT INTO command_events (command_id, from_status, to_status, step, reason, at) VALUES (1, 0, 1, 'hbw retrieve A1', 'started', '2024-03-01 12:00:00.400000');
INSERT INTO command_events (command_id, from_status, to_status, step, reason, at) VALUES (1, 1, 2, '', 'completed', '2024-03-01 12:01:02.123456');
INSERT INTO command_events (command_id, from_status, to_status, step, reason, at) VALUES (2, NULL, 0, '', 'queued', '2024-03-01 12:05:00.000001');
INSERT INTO command_events (command_id, from_status, to_status, step, reason, at) VALUES (2, 0, 1, 'conveyor load entry', 'started', '2024-03-01 12:05:00.500000');
INSERT INTO command_events (command_id, from_status, to_status, step, reason, at) VALUES (2, 1, 3, 'conveyor load entry', 'conveyor: motor failed: CONV_M1', '2024-03-01 12:05:03.000000');
INSERT INTO command_events (command_id, from_status, to_status, step, reason, at) VALUES (3, NULL, 0, '', 'queued', '2024-03-01 12:06:00.999999');
INSERT INTO inventory (slot, carrier_id, workpiece_id, flavor, status, reserved_by, updated_at) VALUES ('A1', 'C-A1', 'WP001', 'CHOCO', 2, NULL, '2024-03-01 12:01:02.123456');
INSERT INTO inventory (slot, carrier_id, workpiece_id, flavor, status, reserved_by, updated_at) VALUES ('A2', 'C-A2', 'WP002', 'VANILLA', 1, NULL, '2024-03-01 11:00:00.000000');
INSERT INTO inventory (slot, carrier_id, workpiece_id, flavor, status, reserved_by, updated_at) VALUES ('A3', 'C-A3', 'WP003', 'STRAWBERRY', 1, NULL, '2024-03-01 11:00:00.000000');
INSERT INTO inventory (slot, carrier_id, workpiece_id, flavor, status, reserved_by, updated_at) VALUES ('B1', 'C-B1', 'WP004', 'CHOCO', 2, 3, '2024-03-01 12:06:00.999999');
INSERT INTO inventory (slot, carrier_id, workpiece_id, flavor, status, reserved_by, updated_at) VALUES ('B2', 'C-B2', 'WP005', 'VANILLA', 1, NULL, '2024-03-01 11:00:00.000000');
INSERT INTO inventory (slot, carrier_id, workpiece_id, flavor, status, reserved_by, updated_at) VALUES ('B3', 'C-B3', 'WP006', 'STRAWBERRY', 1, NULL, '2024-03-01 11:00:00.000000');
INSERT INTO inventory (slot, carrier_id, workpiece_id, flavor, status, reserved_by, updated_at) VALUES ('C1', 'C-C1', '', '', 0, NULL, '2024-03-01 11:00:00.000000');
INSERT INTO inventory (slot, carrier_id, workpiece_id, flavor, status, reserved_by, updated_at) VALUES ('C2', 'C-C2', '', '', 0, NULL, '2024-03-01 11:00:00.000000');
INSERT INTO inventory (slot, carrier_id, workpiece_id, flavor, status, reserved_by, updated_at) VALUES ('C3', 'C-C3', '', '', 0, NULL, '2024-03-01 11:00:00.000000');
INSERT INTO inventory_events (slot, command_id, carrier_id, workpiece_id, flavor, status, reason, at) VALUES ('A1', NULL, 'C-A1', 'WP001', 'CHOCO', 1, 'seeded from the HBW', '2024-03-01 11:00:00.000000');
INSERT INTO inventory_events (slot, command_id, carrier_id, workpiece_id, flavor, status, reason, at) VALUES ('A1', 1, 'C-A1', '', '', 0, 'hbw retrieve A1', '2024-03-01 12:00:10.000000');
INSERT INTO inventory_events (slot, command_id, carrier_id, workpiece_id, flavor, status, reason, at) VALUES ('A1', 1, 'C-A1', 'WP001', 'CHOCO', 2, 'hbw store A1', '2024-03-01 12:01:02.123456');
