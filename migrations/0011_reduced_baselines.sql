-- A baseline's reduction (what each interval of the watch compares with), stored next to its samples so that a watch
-- rebuilt after a restart reads it instead of reducing the samples again: a 7-day baseline at 1-minute steps is 332 KB
-- of samples and about 5 ms of reduction a metric, its reduction about 23 KB. It is a cache, written by the service the
-- first time it reduces the samples: the layout (src/RolloutGate.Core/Analysis/BaselineWindow.Stored.cs) records the
-- version of the reduction and what it was reduced with, and a service that finds another version's reduction, or none,
-- reduces the samples again and stores its own. The samples stay the record.
ALTER TABLE watch_baselines ADD COLUMN reduced bytea;

-- Doubles hardly compress: stored as they are, out of line, without a try at compressing them first.
ALTER TABLE watch_baselines ALTER COLUMN reduced SET STORAGE EXTERNAL;

-- A reduction serves only a running watch, and a deployment never returns to watching once it has left: the reductions
-- are dropped with the state change that ends the watch, whichever path ends it (the watch's verdict, a webhook, an
-- operator's decision), in its transaction. The samples stay.
CREATE FUNCTION watch_baselines_drop_reduced() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE watch_baselines SET reduced = NULL WHERE deployment_id = NEW.id AND reduced IS NOT NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER deployments_watch_ended
    AFTER UPDATE OF state ON deployments
    FOR EACH ROW WHEN (OLD.state = 'watching' AND NEW.state IS DISTINCT FROM 'watching')
    EXECUTE FUNCTION watch_baselines_drop_reduced();
