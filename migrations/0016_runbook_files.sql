-- The runbook version each runbook file last put in force, shared by every replica. A replica keeps the last good
-- version of a file in memory while the file is invalid; one started while the file is invalid reads it from here, so
-- both serve the same version. Keyed by the file's name in the runbooks folder (replicas may mount the folder at
-- different paths). A file that is removed loses its row: a removed runbook governs nothing new, and an invalid file
-- put back later has no last good version to fall back to.
CREATE TABLE runbook_files (
    file                text        PRIMARY KEY,
    runbook_version_id  bigint      NOT NULL REFERENCES runbook_versions (id),
    in_force_since      timestamptz NOT NULL
);
