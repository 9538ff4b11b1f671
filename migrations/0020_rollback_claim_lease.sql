-- A rollback claim was taken over only once claimed_at was 10 minutes old: a replica killed mid-action (SIGKILL, the
-- OOM killer, a lost node) releases nothing, so a decided rollback waited 10 minutes with nothing under way while the
-- regressed version served. A claim is now a lease the claiming replica renews while its action runs: claimed_until,
-- which another replica may take the claim over once it has passed. A claim without one (written by an older version,
-- which does not renew) keeps the old 10 minutes from claimed_at.
ALTER TABLE rollback_actions ADD COLUMN claimed_until timestamptz;
