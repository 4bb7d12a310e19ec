/** The text of `tidemark --help`: a module of its own, so that printing it loads no engine. */

const VOLUME_USAGE = `
  init <folder> <archive-dir> [--exclude GLOB]... [--no-default-excludes]
       [--pre-hook CMD] [--post-hook CMD] [--no-btrfs-snapshot]   baseline of a folder tree
  watch <archive-dir> --every DURATION [--rescan-every DURATION] [--json] [--min-free SIZE|PCT]
        [--prune] [--keep-within D] [--keep-hourly N] [--keep-daily N] [--keep-weekly N]
        [--time-zone Z]                              track a folder, a point every DURATION (30s, 5m);
                                                     all metadata compared again every --rescan-every (1h);
                                                     with --prune or a --keep-* flag, retention as in
                                                     prune after each recorded point
  restore <archive-dir> (--state K | --at ISO_TIME) --to PATH [--path P]... [--force]
                                                     a folder's state, or files and folders of it
  history <archive-dir> <path> [--json]              the versions of one file
  diff <archive-dir> A B [--json]                    what changed between states A and B`;

const RETENTION_USAGE = `
  prune <archive-dir> [--dry-run] [--json] [--now ISO_TIME] [--keep-within D]
        [--keep-hourly N] [--keep-daily N] [--keep-weekly N] [--time-zone Z]
                                                     thin out old states (says what goes and why);
                                                     while watch runs, give it these flags instead
  pin <archive-dir> <state>                          retention never removes this state
  unpin <archive-dir> <state>`;

const CACHE_USAGE = `
  snapshot <archive-dir> [--cache-dir DIR] [--cache-limit SIZE]
                         keep updates in a local cache while the secondary is away (then
                         remembered for this archive; SIZE like 500M or 2G, default 2G)
  watch <archive-dir> --every DURATION [--cache-dir DIR] [--cache-limit SIZE] [--json]
        [--prune] [--keep-within D] [--keep-hourly N] [--keep-daily N] [--keep-weekly N]
        [--time-zone Z]
                         with the cache on: a point every DURATION (by rescan), to the
                         secondary or, while it is away, to the cache; retention (as in
                         prune) after each point recorded on the secondary
  flush <archive-dir> [--cache-dir DIR] [--json]   ship the cached updates to the secondary now
                         (snapshot, watch and flush with the cache take --min-free SIZE|PCT too:
                         the space guard runs on the secondary before shipping and the point)`;

const SECONDARY_USAGE = `
  secondary add <archive-dir> <other-archive> [--cache-dir DIR] [--json]
                         fan-out: make <other-archive> (a folder or s3://BUCKET/PREFIX, with
                         its own encryption: --encrypt/--no-encrypt) an extra secondary holding
                         every state; snapshot, watch and flush then ship each update to it
  secondary list <archive-dir> [--cache-dir DIR] [--json]
                         each extra secondary: reachable, last state, states behind
  secondary remove <archive-dir> <other-archive> [--cache-dir DIR]
                         stop fanning out to it (its archive is kept)`;

const REMOTE_USAGE = `
s3:// archives and encryption (any command; <archive-dir> may be s3://BUCKET/PREFIX):
  --endpoint URL        S3 server (default: AWS_ENDPOINT_URL, else AWS itself)
  --region R            region (default: AWS_REGION, else us-east-1)
  --bwlimit BYTES_PER_S upload limit, e.g. 5M (default: TIDEMARK_BWLIMIT, else none)
  --passphrase-file F   passphrase of an encrypted archive (or TIDEMARK_PASSPHRASE)
  --encrypt / --no-encrypt   init: encrypt the archive (default: on for s3://, off for folders)
  credentials: the AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws)`;

export const USAGE = `usage: tidemark <command> [options]

  init <primary> <archive-dir> [--block-size BYTES]   baseline: record state 0
  snapshot <archive-dir> [--min-free SIZE|PCT]       end the interval now
  states <archive-dir> [--json]                      list the states
  restore <archive-dir> (--state K | --at ISO_TIME) --to PATH [--rollback] [--force] [--json]
  verify <archive-dir> [--deep] [--json]             check every checksum
  catalog rebuild <archive-dir>                      rebuild the catalog from the updates
  serve [--host H] [--port N] [--token T] [--archive DIR]... [--allow-remote] [--data-dir DIR]
  --version                                          print the version of tidemark

folders (volume mode):${VOLUME_USAGE}


retention (device and folder archives):${RETENTION_USAGE}

local cache (while the secondary is away):${CACHE_USAGE}

fan-out (several secondaries):${SECONDARY_USAGE}
${REMOTE_USAGE}`;
