-- Schema of the scheduler tables as `create_all` wrote it before migrations existed
-- (main at b46987e, stf_nodes/storage/models.py), postgresql dialect. Frozen: never edit.

CREATE TABLE commands (
	id BIGSERIAL NOT NULL, 
	kind SMALLINT NOT NULL, 
	status SMALLINT NOT NULL, 
	priority INTEGER NOT NULL, 
	source_slot VARCHAR(2) NOT NULL, 
	target_slot VARCHAR(2) NOT NULL, 
	flavor VARCHAR(16) NOT NULL, 
	workpiece_id VARCHAR(32) NOT NULL, 
	step VARCHAR(128) NOT NULL, 
	message VARCHAR(500) NOT NULL, 
	cancel_requested BOOLEAN NOT NULL, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	started_at TIMESTAMP WITHOUT TIME ZONE, 
	finished_at TIMESTAMP WITHOUT TIME ZONE, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_commands_status_priority_id ON commands (status, priority, id);

CREATE TABLE command_events (
	id BIGSERIAL NOT NULL, 
	command_id BIGINT NOT NULL, 
	from_status SMALLINT, 
	to_status SMALLINT NOT NULL, 
	step VARCHAR(128) NOT NULL, 
	reason VARCHAR(500) NOT NULL, 
	at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(command_id) REFERENCES commands (id)
);

CREATE INDEX ix_command_events_command_id ON command_events (command_id);

CREATE TABLE inventory (
	slot VARCHAR(2) NOT NULL, 
	carrier_id VARCHAR(32) NOT NULL, 
	workpiece_id VARCHAR(32) NOT NULL, 
	flavor VARCHAR(16) NOT NULL, 
	status SMALLINT NOT NULL, 
	reserved_by BIGINT, 
	updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (slot), 
	FOREIGN KEY(reserved_by) REFERENCES commands (id)
);

CREATE TABLE inventory_events (
	id BIGSERIAL NOT NULL, 
	slot VARCHAR(2) NOT NULL, 
	command_id BIGINT, 
	carrier_id VARCHAR(32) NOT NULL, 
	workpiece_id VARCHAR(32) NOT NULL, 
	flavor VARCHAR(16) NOT NULL, 
	status SMALLINT NOT NULL, 
	reason VARCHAR(500) NOT NULL, 
	at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(slot) REFERENCES inventory (slot), 
	FOREIGN KEY(command_id) REFERENCES commands (id)
);

CREATE INDEX ix_inventory_events_slot ON inventory_events (slot);
