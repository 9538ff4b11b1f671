-- The deployment lists (GET /api/v1/deployments and the dashboard) show the newest first, ordered by
-- (created_at DESC, id), and the dashboard pages by that key. These indexes hand out a page in order, for all
-- services or for one, instead of sorting every deployment of the filter first.
CREATE INDEX deployments_newest_first ON deployments (created_at DESC, id);
CREATE INDEX deployments_service_newest_first ON deployments (service, created_at DESC, id);
