-- Settings the user chose through the API, such as the host resolver
-- integration of `banger dns setup`.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
