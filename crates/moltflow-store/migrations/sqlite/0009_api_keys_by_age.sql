-- The dashboard lists a tenant's keys newest first a page at a time (an agency may hold
-- thousands): this index serves that order and the page boundary without a sort.
CREATE INDEX api_keys_tenant_created ON api_keys(tenant_id, created_at, id);
