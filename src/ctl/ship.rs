//! `otsctl ship`: copy the log's new bytes into a mirror directory or a bucket.
use super::{CtlError, Report, While};
use crate::cli::ShipArgs;
use crate::replica::bucket::BucketUrl;
use crate::replica::{bucket_ship, ship};

pub fn run(a: ShipArgs) -> Result<Report, CtlError> {
    if let Some(url) = a.to.to_str().filter(|s| BucketUrl::is_bucket_url(s)) {
        let url = BucketUrl::parse(url).doing("read the bucket URL")?;
        let report = bucket_ship::ship_once(&a.dir, &url).doing("ship the log")?;
        return Report::new(a.json, &report, bucket_ship::render);
    }
    let report = ship::ship(&a.dir, &a.to).doing("ship the log")?;
    Report::new(a.json, &report, ship::render)
}
