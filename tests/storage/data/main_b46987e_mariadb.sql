-- Schema of the scheduler tables as `create_all` wrote it before migrations existed
-- (main at b46987e, stf_nodes/storage/models.py), mariadb dialect. Frozen: never edit.

CREATE TABLE commands (
	id BIGINT NOT NULL AUTO_INCREMENT, 
	kind SMALLINT NOT NULL, 
	status SMALLINT NOT NULL, 
	priority INTEGER NOT NULL, 
	source_slot VARCHAR(2) NOT NULL, 
	target_slot VARCHAR(2) NOT NULL, 
	flavor VARCHAR(16) NOT NULL, 
	workpiece_id VARCHAR(32) NOT NULL, 
	step VARCHAR(128) NOT NULL, 
	message VARCHAR(500) NOT NULL, 
	cancel_requested BOOL NOT NULL, 
	created_at DATETIME(6) NOT NULL, 
	started_at DATETIME(6), 
	finished_at DATETIME(6), 
	PRIMARY KEY (id)
)ENGINE=InnoDB CHARSET=utf8mb4;

CREATE INDEX ix_commands_status_priority_id ON commands (status, priority, id);

CREATE TABLE command_events (
	id BIGINT NOT NULL AUTO_INCREMENT, 
	command_id BIGINT NOT NULL, 
	from_status SMALLINT, 
	to_status SMALLINT NOT NULL, 
	step VARCHAR(128) NOT NULL, 
	reason VARCHAR(500) NOT NULL, 
	at DATETIME(6) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(command_id) REFERENCES commands (id)
)ENGINE=InnoDB CHARSET=utf8mb4;

CREATE INDEX ix_command_events_command_id ON command_events (command_id);

CREATE TABLE inventory (
	slot VARCHAR(2) NOT NULL, 
	carrier_id VARCHAR(32) NOT NULL, 
	workpiece_id VARCHAR(32) NOT NULL, 
	flavor VARCHAR(16) NOT NULL, 
	status SMALLINT NOT NULL, 
	reserved_by BIGINT, 
	updated_at DATETIME(6) NOT NULL, 
	PRIMARY KEY (slot), 
	FOREIGN KEY(reserved_by) REFERENCES commands (id)
)ENGINE=InnoDB CHARSET=utf8mb4;

CREATE TABLE inventory_events (
	id BIGINT NOT NULL AUTO_INCREMENT, 
	slot VARCHAR(2) NOT NULL, 
	command_id BIGINT, 
	carrier_id VARCHAR(32) NOT NULL, 
	workpiece_id VARCHAR(32) NOT NULL, 
	flavor VARCHAR(16) NOT NULL, 
	status SMALLINT NOT NULL, 
	reason VARCHAR(500) NOT NULL, 
	at DATETIME(6) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(slot) REFERENCES inventory (slot), 
	FOREIGN KEY(command_id) REFERENCES commands (id)
)ENGINE=InnoDB CHARSET=utf8mb4;

CREATE INDEX ix_inventory_events_slot ON inventory_events (slot);
