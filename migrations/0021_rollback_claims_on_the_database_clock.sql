-- When another replica may take a rollback claim over, in one place: the due list and the claim itself both ask this
-- function, so the two can no longer disagree. It compares on the database's clock, which claims are now dated and
-- renewed on too (RollbackDispatcher): a lease is an agreement between replicas, and with each replica's own clock
-- a replica running ahead by more than the lease took over a live claim, and one running behind wrote leases that
-- the others saw as run out, so the action ran twice. A lease after its claimed_at is taken over once it has passed;
-- one that is not (NULL, or left as it was by a version before 0020 that took the claim over and does not renew)
-- holds for unrenewed_expiry from claimed_at.
CREATE FUNCTION rollback_claim_expired(claimed_at timestamptz, claimed_until timestamptz, finished_at timestamptz, unrenewed_expiry interval)
RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT finished_at IS NULL
       AND (claimed_until <= clock_timestamp() AND claimed_until > claimed_at
            OR (claimed_until IS NULL OR claimed_until <= claimed_at) AND claimed_at < clock_timestamp() - unrenewed_expiry)
$$;
