-- The checks of an overridden deny that could not run (status error: their source did not answer) are kept apart from
-- those that failed, so the record says which is which; gate_failed_checks named both as failed. NULL for a deny
-- overridden before, whose gate_failed_checks still holds both.
ALTER TABLE deployments ADD COLUMN gate_errored_checks text[];
