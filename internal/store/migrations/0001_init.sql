CREATE TABLE images (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    source          TEXT NOT NULL,
    dir             TEXT NOT NULL,
    kernel          TEXT NOT NULL,
    vmlinux         TEXT NOT NULL DEFAULT '',
    initrd          TEXT NOT NULL,
    rootfs          TEXT NOT NULL,
    manifest        TEXT NOT NULL DEFAULT '',
    manifest_sha256 TEXT NOT NULL DEFAULT '',
    packages_sha256 TEXT NOT NULL DEFAULT '',
    kernel_version  TEXT NOT NULL DEFAULT '',
    size_bytes      INTEGER NOT NULL DEFAULT 0,
    build_log       TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL
);

CREATE TABLE vms (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE RESTRICT,
    cpus        INTEGER NOT NULL,
    memory_mib  INTEGER NOT NULL,
    disk_bytes  INTEGER NOT NULL,
    ip          TEXT NOT NULL DEFAULT '',
    mac         TEXT NOT NULL DEFAULT '',
    tap         TEXT NOT NULL DEFAULT '',
    dir         TEXT NOT NULL,
    state_dir   TEXT NOT NULL,
    socket      TEXT NOT NULL,
    pid         INTEGER NOT NULL DEFAULT 0,
    pid_start   INTEGER NOT NULL DEFAULT 0,
    hidden      INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    started_at  INTEGER NOT NULL DEFAULT 0
);

CREATE UNIQUE INDEX vms_ip ON vms(ip) WHERE ip != '';
CREATE UNIQUE INDEX vms_tap ON vms(tap) WHERE tap != '';
CREATE INDEX vms_image ON vms(image_id);
