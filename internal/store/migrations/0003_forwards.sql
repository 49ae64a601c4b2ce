-- Port forwards kept with their VM: re-established whenever it runs,
-- removed with it.
CREATE TABLE forwards (
    vm_id      TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    proto      TEXT NOT NULL,
    host_addr  TEXT NOT NULL,
    host_port  INTEGER NOT NULL,
    guest_port INTEGER NOT NULL,
    PRIMARY KEY (proto, host_addr, host_port)
);
CREATE INDEX forwards_vm ON forwards(vm_id);
