-- Snowflake statements for furrow destination "lake" (type s3, format json.gz).
-- Written by `furrow snowflake sql`; the objects are created only if missing, so running it again is safe.
-- Good events: s3://acme-snowplow/furrow/prod/good/  Bad rows: s3://acme-snowplow/furrow/prod/bad/
-- Steps as in https://docs.snowflake.com/en/user-guide/data-load-snowpipe-auto-s3
--
-- 0. AWS, before this script: an IAM policy allowing s3:GetObject and s3:GetObjectVersion on
--    arn:aws:s3:::acme-snowplow/furrow/prod/* and s3:ListBucket and s3:GetBucketLocation on arn:aws:s3:::acme-snowplow,
--    and an IAM role with that policy (its trust policy is completed in step 2).

-- 1. Storage integration (as ACCOUNTADMIN, or a role with CREATE INTEGRATION)
CREATE STORAGE INTEGRATION IF NOT EXISTS "FURROW_LAKE_S3"
  TYPE = EXTERNAL_STAGE
  STORAGE_PROVIDER = 'S3'
  ENABLED = TRUE
  STORAGE_AWS_ROLE_ARN = '<arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME>'
  STORAGE_ALLOWED_LOCATIONS = ('s3://acme-snowplow/furrow/prod/');

-- 2. The external ID for the role's trust policy
-- DESC INTEGRATION "FURROW_LAKE_S3";
-- In AWS, let the role's trust policy allow sts:AssumeRole to the principal STORAGE_AWS_IAM_USER_ARN,
-- with the condition sts:ExternalId = STORAGE_AWS_EXTERNAL_ID, both as DESC INTEGRATION shows them.

-- 3. Database and schema
CREATE DATABASE IF NOT EXISTS "SNOWPLOW";
CREATE SCHEMA IF NOT EXISTS "SNOWPLOW"."ATOMIC";

-- 4. File formats
-- JSON lines, gzipped: bad rows, and the good events (one Analytics SDK JSON event a line).
CREATE FILE FORMAT IF NOT EXISTS "SNOWPLOW"."ATOMIC"."FURROW_JSON"
  TYPE = JSON
  COMPRESSION = AUTO;

-- 5. Stage
CREATE STAGE IF NOT EXISTS "SNOWPLOW"."ATOMIC"."FURROW_LAKE"
  URL = 's3://acme-snowplow/furrow/prod/'
  STORAGE_INTEGRATION = "FURROW_LAKE_S3";

-- 6. Tables
CREATE TABLE IF NOT EXISTS "SNOWPLOW"."ATOMIC"."EVENTS" (
  app_id VARCHAR,
  platform VARCHAR,
  etl_tstamp TIMESTAMP_NTZ,
  collector_tstamp TIMESTAMP_NTZ NOT NULL,
  dvce_created_tstamp TIMESTAMP_NTZ,
  event VARCHAR,
  event_id VARCHAR NOT NULL,
  txn_id INTEGER,
  name_tracker VARCHAR,
  v_tracker VARCHAR,
  v_collector VARCHAR NOT NULL,
  v_etl VARCHAR NOT NULL,
  user_id VARCHAR,
  user_ipaddress VARCHAR,
  user_fingerprint VARCHAR,
  domain_userid VARCHAR,
  domain_sessionidx SMALLINT,
  network_userid VARCHAR,
  geo_country VARCHAR,
  geo_region VARCHAR,
  geo_city VARCHAR,
  geo_zipcode VARCHAR,
  geo_latitude DOUBLE PRECISION,
  geo_longitude DOUBLE PRECISION,
  geo_region_name VARCHAR,
  ip_isp VARCHAR,
  ip_organization VARCHAR,
  ip_domain VARCHAR,
  ip_netspeed VARCHAR,
  page_url VARCHAR,
  page_title VARCHAR,
  page_referrer VARCHAR,
  page_urlscheme VARCHAR,
  page_urlhost VARCHAR,
  page_urlport INTEGER,
  page_urlpath VARCHAR,
  page_urlquery VARCHAR,
  page_urlfragment VARCHAR,
  refr_urlscheme VARCHAR,
  refr_urlhost VARCHAR,
  refr_urlport INTEGER,
  refr_urlpath VARCHAR,
  refr_urlquery VARCHAR,
  refr_urlfragment VARCHAR,
  refr_medium VARCHAR,
  refr_source VARCHAR,
  refr_term VARCHAR,
  mkt_medium VARCHAR,
  mkt_source VARCHAR,
  mkt_term VARCHAR,
  mkt_content VARCHAR,
  mkt_campaign VARCHAR,
  contexts VARIANT,
  se_category VARCHAR,
  se_action VARCHAR,
  se_label VARCHAR,
  se_property VARCHAR,
  se_value DOUBLE PRECISION,
  unstruct_event VARIANT,
  tr_orderid VARCHAR,
  tr_affiliation VARCHAR,
  tr_total NUMBER(18,2),
  tr_tax NUMBER(18,2),
  tr_shipping NUMBER(18,2),
  tr_city VARCHAR,
  tr_state VARCHAR,
  tr_country VARCHAR,
  ti_orderid VARCHAR,
  ti_sku VARCHAR,
  ti_name VARCHAR,
  ti_category VARCHAR,
  ti_price NUMBER(18,2),
  ti_quantity INTEGER,
  pp_xoffset_min INTEGER,
  pp_xoffset_max INTEGER,
  pp_yoffset_min INTEGER,
  pp_yoffset_max INTEGER,
  useragent VARCHAR,
  br_name VARCHAR,
  br_family VARCHAR,
  br_version VARCHAR,
  br_type VARCHAR,
  br_renderengine VARCHAR,
  br_lang VARCHAR,
  br_features_pdf BOOLEAN,
  br_features_flash BOOLEAN,
  br_features_java BOOLEAN,
  br_features_director BOOLEAN,
  br_features_quicktime BOOLEAN,
  br_features_realplayer BOOLEAN,
  br_features_windowsmedia BOOLEAN,
  br_features_gears BOOLEAN,
  br_features_silverlight BOOLEAN,
  br_cookies BOOLEAN,
  br_colordepth VARCHAR,
  br_viewwidth INTEGER,
  br_viewheight INTEGER,
  os_name VARCHAR,
  os_family VARCHAR,
  os_manufacturer VARCHAR,
  os_timezone VARCHAR,
  dvce_type VARCHAR,
  dvce_ismobile BOOLEAN,
  dvce_screenwidth INTEGER,
  dvce_screenheight INTEGER,
  doc_charset VARCHAR,
  doc_width INTEGER,
  doc_height INTEGER,
  tr_currency VARCHAR,
  tr_total_base NUMBER(18,2),
  tr_tax_base NUMBER(18,2),
  tr_shipping_base NUMBER(18,2),
  ti_currency VARCHAR,
  ti_price_base NUMBER(18,2),
  base_currency VARCHAR,
  geo_timezone VARCHAR,
  mkt_clickid VARCHAR,
  mkt_network VARCHAR,
  etl_tags VARCHAR,
  dvce_sent_tstamp TIMESTAMP_NTZ,
  refr_domain_userid VARCHAR,
  refr_dvce_tstamp TIMESTAMP_NTZ,
  derived_contexts VARIANT,
  domain_sessionid VARCHAR,
  derived_tstamp TIMESTAMP_NTZ,
  event_vendor VARCHAR,
  event_name VARCHAR,
  event_format VARCHAR,
  event_version VARCHAR,
  event_fingerprint VARCHAR,
  true_tstamp TIMESTAMP_NTZ,
  load_tstamp TIMESTAMP_NTZ DEFAULT SYSDATE(),
  CONSTRAINT event_id_pk PRIMARY KEY (event_id)
);
CREATE TABLE IF NOT EXISTS "SNOWPLOW"."ATOMIC"."BAD_ROWS" (
  "SCHEMA" VARCHAR NOT NULL,
  failure_type VARCHAR NOT NULL,
  payload VARIANT NOT NULL,
  file_name VARCHAR,
  load_tstamp TIMESTAMP_NTZ
);

-- 7. Snowpipes
-- ON_ERROR = CONTINUE loads a file's other rows when one is refused; see what was refused with
-- SELECT * FROM TABLE(INFORMATION_SCHEMA.COPY_HISTORY(TABLE_NAME => 'EVENTS', START_TIME => DATEADD(hour, -24, CURRENT_TIMESTAMP())));
CREATE PIPE IF NOT EXISTS "SNOWPLOW"."ATOMIC"."EVENTS_PIPE"
  AUTO_INGEST = TRUE
  AS
COPY INTO "SNOWPLOW"."ATOMIC"."EVENTS"
  FROM @"SNOWPLOW"."ATOMIC"."FURROW_LAKE"/good/
  FILE_FORMAT = (FORMAT_NAME = "SNOWPLOW"."ATOMIC"."FURROW_JSON")
  MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE
  ON_ERROR = CONTINUE;
CREATE PIPE IF NOT EXISTS "SNOWPLOW"."ATOMIC"."BAD_ROWS_PIPE"
  AUTO_INGEST = TRUE
  AS
COPY INTO "SNOWPLOW"."ATOMIC"."BAD_ROWS" ("SCHEMA", failure_type, payload, file_name, load_tstamp)
  FROM (SELECT
    $1:schema::VARCHAR,
    SPLIT_PART($1:schema::VARCHAR, '/', 2),
    $1,
    METADATA$FILENAME,
    CONVERT_TIMEZONE('UTC', METADATA$START_SCAN_TIME)::TIMESTAMP_NTZ
    FROM @"SNOWPLOW"."ATOMIC"."FURROW_LAKE"/bad/)
  FILE_FORMAT = (FORMAT_NAME = "SNOWPLOW"."ATOMIC"."FURROW_JSON")
  ON_ERROR = CONTINUE;

-- 8. Permissions, for a role other than the pipes' owner that operates them (replace <role>)
-- GRANT USAGE ON DATABASE "SNOWPLOW" TO ROLE <role>;
-- GRANT USAGE ON SCHEMA "SNOWPLOW"."ATOMIC" TO ROLE <role>;
-- GRANT USAGE ON STAGE "SNOWPLOW"."ATOMIC"."FURROW_LAKE" TO ROLE <role>;
-- GRANT INSERT, SELECT ON TABLE "SNOWPLOW"."ATOMIC"."EVENTS" TO ROLE <role>;
-- GRANT INSERT, SELECT ON TABLE "SNOWPLOW"."ATOMIC"."BAD_ROWS" TO ROLE <role>;
-- GRANT OPERATE, MONITOR ON PIPE "SNOWPLOW"."ATOMIC"."EVENTS_PIPE" TO ROLE <role>;
-- GRANT OPERATE, MONITOR ON PIPE "SNOWPLOW"."ATOMIC"."BAD_ROWS_PIPE" TO ROLE <role>;

-- 9. S3 event notifications to Snowpipe's SQS queue
-- SHOW PIPES LIKE '%_PIPE' IN SCHEMA "SNOWPLOW"."ATOMIC";
-- notification_channel is the ARN of the SQS queue Snowflake created for the pipes (both have the same).
-- In AWS, add to bucket acme-snowplow an event notification for s3:ObjectCreated:* on the prefix "furrow/prod/",
-- with that queue as its destination. SELECT SYSTEM$PIPE_STATUS('SNOWPLOW.ATOMIC.EVENTS_PIPE'); then shows the pipe running.

-- 10. Backfill: objects written before the notifications were set up, or that failed to load
-- ALTER PIPE ... REFRESH loads what the pipe has not loaded among the files staged in the last 7 days:
-- ALTER PIPE "SNOWPLOW"."ATOMIC"."EVENTS_PIPE" REFRESH;
-- ALTER PIPE "SNOWPLOW"."ATOMIC"."BAD_ROWS_PIPE" REFRESH;
-- For older files, run the COPY statements below, restricted to partitions the pipes did not load
-- (FROM @"SNOWPLOW"."ATOMIC"."FURROW_LAKE"/good/<partition>/). COPY and a pipe keep separate load histories: a COPY over files a pipe
-- loaded loads them again.
COPY INTO "SNOWPLOW"."ATOMIC"."EVENTS"
  FROM @"SNOWPLOW"."ATOMIC"."FURROW_LAKE"/good/
  FILE_FORMAT = (FORMAT_NAME = "SNOWPLOW"."ATOMIC"."FURROW_JSON")
  MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE
  ON_ERROR = CONTINUE;
COPY INTO "SNOWPLOW"."ATOMIC"."BAD_ROWS" ("SCHEMA", failure_type, payload, file_name, load_tstamp)
  FROM (SELECT
    $1:schema::VARCHAR,
    SPLIT_PART($1:schema::VARCHAR, '/', 2),
    $1,
    METADATA$FILENAME,
    CONVERT_TIMEZONE('UTC', METADATA$START_SCAN_TIME)::TIMESTAMP_NTZ
    FROM @"SNOWPLOW"."ATOMIC"."FURROW_LAKE"/bad/)
  FILE_FORMAT = (FORMAT_NAME = "SNOWPLOW"."ATOMIC"."FURROW_JSON")
  ON_ERROR = CONTINUE;
