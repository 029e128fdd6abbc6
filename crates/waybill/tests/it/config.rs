//! The shipped example configuration is valid, and its mapping handles the samples.

use waybill::Config;

fn example() -> Config {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../waybill.example.toml");
    Config::load(std::path::Path::new(path)).unwrap()
}

#[test]
fn the_example_configuration_validates() {
    let rt = example().validate().unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(rt.sources.len(), 5);
    assert_eq!(rt.sinks.len(), 1);
}

#[test]
fn errors_are_reported_all_at_once_with_their_paths() {
    let text = r#"
[server]
listen = "nowhere"
[sources.x]
type = "jq"
auth = { type = "standard_webhooks", secrets = ["plain:short"] }
mapping = "{type: .a,"
[[subscriptions]]
name = "s"
sink = "missing"
types = ["parcel.*", "shipment"]
"#;
    let errs = Config::parse(text, std::iter::empty())
        .unwrap()
        .validate()
        .err()
        .unwrap();
    let joined = errs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    for want in [
        "server.listen",
        "sources.x.auth.secrets[0]",
        "sources.x.mapping",
        "subscriptions[0].sink",
        "subscriptions[0].types: `parcel.*`",
        "subscriptions[0].types: `shipment`",
    ] {
        assert!(joined.contains(want), "missing {want} in:\n{joined}");
    }
}

#[test]
fn unknown_fields_name_the_line() {
    let e = Config::parse(
        "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n",
        std::iter::empty(),
    )
    .err()
    .unwrap();
    let msg = format!("{e:#}");
    assert!(msg.contains("line 3") && msg.contains("lisen"), "{msg}");
}

#[test]
fn environment_overrides_values() {
    let env = vec![
        (
            "WAYBILL_SERVER__LISTEN".to_string(),
            "127.0.0.1:9999".to_string(),
        ),
        ("WAYBILL_STORE__MAX_BATCH".to_string(), "7".to_string()),
        ("WAYBILL_STORE__MMAP_SIZE_MIB".to_string(), "0".to_string()),
        (
            "WAYBILL_STORE__CHECKPOINT_PAGES".to_string(),
            "16000".to_string(),
        ),
        ("WAYBILL_UNRELATED".to_string(), "x".to_string()),
    ];
    let c = Config::parse("", env.into_iter()).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:9999");
    assert_eq!(c.store.max_batch, 7);
    assert_eq!(c.store.mmap_size_mib, 0);
    assert_eq!(c.store.checkpoint_pages, 16000);
    let defaults = Config::parse("", std::iter::empty()).unwrap().store;
    assert_eq!(defaults.mmap_size_mib, 2048);
    assert_eq!(defaults.checkpoint_pages, 4000);
}

/// Every `[store]` setting reaches the store's options.
#[test]
fn store_settings_reach_the_store() {
    let c = Config::parse(
        "[store]\npath = \"x/y.db\"\nsynchronous = \"normal\"\nmax_batch = 7\nmmap_size_mib = 3\ncheckpoint_pages = 16000\n",
        std::iter::empty(),
    )
    .unwrap();
    let o = waybill::sqlite_options(&c);
    assert_eq!(o.path, std::path::PathBuf::from("x/y.db"));
    assert_eq!(o.synchronous, waybill_store::Synchronous::Normal);
    assert_eq!(o.max_batch, 7);
    assert_eq!(o.mmap_size, 3 << 20);
    assert_eq!(o.checkpoint_pages, 16000);
}

#[test]
fn a_checkpoint_interval_of_zero_is_refused() {
    let c = Config::parse("[store]\ncheckpoint_pages = 0\n", std::iter::empty()).unwrap();
    let errs = c.validate().err().unwrap_or_default();
    assert!(
        errs.iter()
            .any(|e| e.path == "store.checkpoint_pages"
                && e.message.starts_with("must be at least 1")),
        "{errs:?}"
    );
}

#[test]
fn ownership_defaults_and_overrides_with_errors_named() {
    use waybill_model::ownership::Fact;
    let text = r#"
[sources.ups]
type = "easypost"
secret = "plain:easypost-webhook-secret-0001"
[sources.asn]
type = "x12"
auth = { type = "api_key", keys = ["plain:0123456789abcdef"] }
[ownership]
weight = ["ups"]
freight_charge = []
"#;
    let rt = Config::parse(text, std::iter::empty())
        .unwrap()
        .validate()
        .unwrap_or_else(|e| panic!("{e:#?}"));
    let o = &rt.ownership;
    assert!(
        o.owns("ups", Fact::Tracking),
        "carriers own tracking by default"
    );
    assert!(
        o.owns("asn", Fact::Packages),
        "the warehouse owns packages by default"
    );
    assert!(
        o.owns("ups", Fact::Weight) && !o.owns("asn", Fact::Weight),
        "override"
    );
    assert!(o.owners[&Fact::FreightCharge].is_empty());
    let errs = Config::parse(
        "[ownership]\nweigth = []\ntracking = [\"nobody\"]\n",
        std::iter::empty(),
    )
    .unwrap()
    .validate()
    .err()
    .unwrap();
    let joined = errs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        joined.contains("ownership.weigth: unknown fact"),
        "{joined}"
    );
    assert!(
        joined.contains("ownership.tracking: no source named `nobody`"),
        "{joined}"
    );
}

/// `[server.tls]`: absent means plain HTTP; every problem is reported with its field.
#[test]
fn tls_errors_name_their_field() {
    let plain = Config::parse("", std::iter::empty()).unwrap();
    assert!(plain.server.tls.is_none());
    assert!(plain.validate().is_ok_and(|rt| rt.tls.is_none()));

    let text = r#"
[server.tls]
cert = "file:/nonexistent/waybill-test/cert.pem"
key = "hunter2"
reload_interval = "500ms"
"#;
    let errs = Config::parse(text, std::iter::empty())
        .unwrap()
        .validate()
        .err()
        .unwrap_or_default();
    let joined = errs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    for want in [
        "server.tls.reload_interval: must be at least 1s",
        "server.tls.cert: cannot read secret file /nonexistent/waybill-test/cert.pem",
        "server.tls.key: a secret must be `env:NAME`, `file:PATH` or `plain:VALUE`",
    ] {
        assert!(joined.contains(want), "missing {want} in:\n{joined}");
    }

    let text = "[server.tls]\ncert = \"plain:not PEM\"\nkey = \"plain:nor this\"\n";
    let errs = Config::parse(text, std::iter::empty())
        .unwrap()
        .validate()
        .err()
        .unwrap_or_default();
    let joined = errs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    for want in [
        "server.tls.cert: no certificate in it",
        "server.tls.key: no private key in it",
    ] {
        assert!(joined.contains(want), "missing {want} in:\n{joined}");
    }
    assert!(
        !joined.contains("nor this"),
        "a key's value was shown: {joined}"
    );

    let e = Config::parse(
        "[server.tls]\ncert = \"file:cert.pem\"\n",
        std::iter::empty(),
    )
    .err()
    .unwrap();
    let msg = format!("{e:#}");
    assert!(msg.contains("missing field `key`"), "{msg}");
}
