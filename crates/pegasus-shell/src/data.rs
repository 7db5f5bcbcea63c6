//! The data commands on the table selected with `use`: `set`, `get`, `del`, `exist`,
//! `ttl`, `incr`, `count`, `multi_*`, `check_and_set`, `hash_scan`, `full_scan`.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use pegasus_client::{CasCheckType, CheckAndSetOptions, ScanOptions};

use crate::words::{escape, num, parse_args, usage};
use crate::{Result, Shell, ShellError};

/// `check_and_set -t` names, as Pegasus's shell spells them.
fn check_type(name: &str) -> Option<CasCheckType> {
    let t = match name {
        "no_check" => 0,
        "not_exist" => 1,
        "not_exist_or_empty" => 2,
        "exist" => 3,
        "not_empty" => 4,
        "match_anywhere" => 5,
        "match_prefix" => 6,
        "match_postfix" => 7,
        "bytes_less" => 8,
        "bytes_less_or_equal" => 9,
        "bytes_equal" => 10,
        "bytes_greater_or_equal" => 11,
        "bytes_greater" => 12,
        "int_less" => 13,
        "int_less_or_equal" => 14,
        "int_equal" => 15,
        "int_greater_or_equal" => 16,
        "int_greater" => 17,
        _ => return None,
    };
    Some(CasCheckType::from_i32(t))
}

impl Shell {
    pub(crate) async fn set(&self, rest: &[Vec<u8>]) -> Result<String> {
        let (hk, sk, v, ttl) = match rest {
            [hk, sk, v] => (hk, sk, v, None),
            [hk, sk, v, ttl] => (hk, sk, v, Some(Duration::from_secs(num(ttl, "ttl")?))),
            _ => return Err(usage("set <hk> <sk> <value> [ttl_seconds]")),
        };
        self.table()?.set(hk, sk, v, ttl).await?;
        Ok("OK\n".into())
    }

    pub(crate) async fn get(&self, rest: &[Vec<u8>]) -> Result<String> {
        let [hk, sk] = rest else {
            return Err(usage("get <hk> <sk>"));
        };
        Ok(match self.table()?.get(hk, sk).await? {
            Some(v) => format!("{}\n", escape(&v)),
            None => "Not found\n".into(),
        })
    }

    pub(crate) async fn del(&self, rest: &[Vec<u8>]) -> Result<String> {
        let [hk, sk] = rest else {
            return Err(usage("del <hk> <sk>"));
        };
        self.table()?.del(hk, sk).await?;
        Ok("OK\n".into())
    }

    pub(crate) async fn exist(&self, rest: &[Vec<u8>]) -> Result<String> {
        let [hk, sk] = rest else {
            return Err(usage("exist <hk> <sk>"));
        };
        Ok(if self.table()?.exist(hk, sk).await? {
            "True\n".into()
        } else {
            "False\n".into()
        })
    }

    pub(crate) async fn ttl(&self, rest: &[Vec<u8>]) -> Result<String> {
        let [hk, sk] = rest else {
            return Err(usage("ttl <hk> <sk>"));
        };
        Ok(match self.table()?.ttl(hk, sk).await? {
            None => "Not found\n".into(),
            Some(-1) => "Infinite\n".into(),
            Some(s) => format!("{s}\n"),
        })
    }

    pub(crate) async fn incr(&self, rest: &[Vec<u8>]) -> Result<String> {
        let (hk, sk, by) = match rest {
            [hk, sk] => (hk, sk, 1),
            [hk, sk, by] => (hk, sk, num(by, "increment")?),
            _ => return Err(usage("incr <hk> <sk> [increment]")),
        };
        let v = self.table()?.incr(hk, sk, by, None).await?;
        Ok(format!("{v}\n"))
    }

    pub(crate) async fn count(&self, rest: &[Vec<u8>]) -> Result<String> {
        let [hk] = rest else {
            return Err(usage("count <hk>"));
        };
        Ok(format!("{}\n", self.table()?.sortkey_count(hk).await?))
    }

    pub(crate) async fn multi_set(&self, rest: &[Vec<u8>]) -> Result<String> {
        let Some((hk, kvs)) = rest.split_first() else {
            return Err(usage("multi_set <hk> <sk> <value> [sk value ...]"));
        };
        if kvs.is_empty() || !kvs.len().is_multiple_of(2) {
            return Err(usage("multi_set <hk> <sk> <value> [sk value ...]"));
        }
        let pairs: Vec<(&[u8], &[u8])> = kvs
            .chunks(2)
            .filter_map(|c| match c {
                [k, v] => Some((k.as_slice(), v.as_slice())),
                _ => None,
            })
            .collect();
        self.table()?.multi_set(hk, &pairs, None).await?;
        Ok("OK\n".into())
    }

    pub(crate) async fn multi_get(&self, rest: &[Vec<u8>]) -> Result<String> {
        let Some((hk, sks)) = rest.split_first() else {
            return Err(usage("multi_get <hk> [sk ...]"));
        };
        let sks: Vec<&[u8]> = sks.iter().map(Vec::as_slice).collect();
        let r = self.table()?.multi_get(hk, &sks).await?;
        let mut out = String::new();
        for (k, v) in &r.kvs {
            let _ = writeln!(out, "{} : {} => {}", escape(hk), escape(k), escape(v));
        }
        let _ = writeln!(
            out,
            "\n{} key-value pair(s){}",
            r.kvs.len(),
            if r.all_fetched {
                ""
            } else {
                " (more not fetched)"
            }
        );
        Ok(out)
    }

    pub(crate) async fn multi_del(&self, rest: &[Vec<u8>]) -> Result<String> {
        let Some((hk, sks)) = rest.split_first() else {
            return Err(usage("multi_del <hk> <sk> [sk ...]"));
        };
        if sks.is_empty() {
            return Err(usage("multi_del <hk> <sk> [sk ...]"));
        }
        let sks: Vec<&[u8]> = sks.iter().map(Vec::as_slice).collect();
        let n = self.table()?.multi_del(hk, &sks).await?;
        Ok(format!("{n} deleted\n"))
    }

    pub(crate) async fn check_and_set(&self, rest: &[Vec<u8>]) -> Result<String> {
        let a = parse_args(rest, &["r"])?;
        let [hk] = a.positional.as_slice() else {
            return Err(usage(
                "check_and_set <hk> [-c check_sk] [-t check_type] [-o operand] [-s set_sk] [-v value] [-l ttl] [-r]",
            ));
        };
        let check_sk = a.opt_bytes("c").unwrap_or_default();
        let t = a.opt_str("t").unwrap_or_else(|| "no_check".into());
        let check_type =
            check_type(&t).ok_or_else(|| ShellError::Usage(format!("unknown check type {t:?}")))?;
        let operand = a.opt_bytes("o").unwrap_or_default();
        let value = a
            .opt_bytes("v")
            .ok_or_else(|| ShellError::Usage("check_and_set needs -v value".into()))?;
        let ttl: Option<u64> = a.opt_num("l")?;
        let opts = CheckAndSetOptions {
            set_sort_key: a.opt_bytes("s").map(Bytes::from),
            ttl: ttl.map(Duration::from_secs),
            return_check_value: a.flag("r"),
        };
        let r = self
            .table()?
            .check_and_set(hk, &check_sk, check_type, &operand, &value, &opts)
            .await?;
        let mut out = if r.set_succeed {
            "set succeed\n".to_string()
        } else {
            "set failed, because check not passed\n".to_string()
        };
        if a.flag("r") {
            match r.check_value {
                Some(v) => {
                    let _ = writeln!(out, "check value: {}", escape(&v));
                }
                None => out.push_str("check value: not found\n"),
            }
        }
        Ok(out)
    }

    pub(crate) async fn hash_scan(&self, rest: &[Vec<u8>]) -> Result<String> {
        let a = parse_args(rest, &[])?;
        let [hk, start, stop] = a.positional.as_slice() else {
            return Err(usage(
                "hash_scan <hk> <start_sk> <stop_sk> [-n max] [-i true|false]",
            ));
        };
        let max: usize = a.opt_num("n")?.unwrap_or(usize::MAX);
        let no_value = a.opt_str("i").is_some_and(|v| v == "true");
        let mut scanner = self
            .table()?
            .get_scanner(
                hk,
                start,
                stop,
                ScanOptions {
                    no_value,
                    ..ScanOptions::default()
                },
            )
            .await?;
        let mut out = String::new();
        let mut n = 0;
        while n < max {
            let Some((h, s, v)) = scanner.next().await? else {
                break;
            };
            n += 1;
            let _ = writeln!(out, "{} : {} => {}", escape(&h), escape(&s), escape(&v));
        }
        scanner.close().await;
        let _ = writeln!(out, "\n{n} key-value pair(s)");
        Ok(out)
    }

    pub(crate) async fn full_scan(&self, rest: &[Vec<u8>]) -> Result<String> {
        let a = parse_args(rest, &[])?;
        let max: usize = a.opt_num("n")?.unwrap_or(usize::MAX);
        let scanners = self
            .table()?
            .get_unordered_scanners(usize::MAX, ScanOptions::default())
            .await?;
        let mut out = String::new();
        let mut n = 0;
        'outer: for mut s in scanners {
            while let Some((h, k, v)) = s.next().await? {
                if n >= max {
                    break 'outer;
                }
                n += 1;
                let _ = writeln!(out, "{} : {} => {}", escape(&h), escape(&k), escape(&v));
            }
        }
        let _ = writeln!(out, "\n{n} key-value pair(s)");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_types_use_pegasus_shell_names() {
        assert_eq!(check_type("not_exist"), Some(CasCheckType::ValueNotExist));
        assert_eq!(check_type("int_greater"), Some(CasCheckType::from_i32(17)));
        assert_eq!(check_type("nope"), None);
    }
}
