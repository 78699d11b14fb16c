/* SPDX-License-Identifier: MIT */
/* halod: the halo node daemon.  Parses options, builds the manager, runs it. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amf.h"
#include "config.h"
#include "halo/halo.h"
#include "http.h"
#include "journal.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "parse-util.h"
#include "paths.h"

static const char *arg_check;
static struct manager_options arg = {
    .state_dir = HALO_STATE_DIR,
    .lease_ttl = 2,
    .http = "127.0.0.1:" HTTP_DEFAULT_PORT,
};

static void help(void) {
    printf("Usage: halod [OPTIONS] CLUSTER.yaml\n"
           "       halod --check CLUSTER.yaml\n\n"
           "The halo node daemon: supervises the components of this node and assigns their roles.\n\n"
           "  -n, --check             validate the description, print 'configuration OK' or every error\n"
           "  -d, --state-dir DIR     where the store and the socket live (default /var/lib/halo)\n"
           "  -s, --socket PATH       HA link socket (default STATE_DIR/halod.sock with --state-dir,\n"
           "                          else " HALO_RUNTIME_DIR "/halod.sock)\n"
           "      --node NAME         this node's name (default: the only node of the description)\n"
           "      --etcd URL[,URL...] share the cluster through etcd (several nodes) instead of the\n"
           "                          local SQLite store; also $HALO_ETCD\n"
           "      --etcd-cacert FILE  the CA (PEM) that signed the etcd members' certificates\n"
           "                          (default: the system's); https:// endpoints\n"
           "      --etcd-cert FILE, --etcd-key FILE\n"
           "                          this node's client certificate and key (PEM), for etcd's\n"
           "                          --client-cert-auth\n"
           "      --etcd-user USER, --etcd-password-file FILE\n"
           "                          authenticate to etcd as USER with the password in FILE (one\n"
           "                          line; a file others may read is refused)\n"
           "      --lease-ttl SEC     node lease TTL asked of etcd (default 2; etcd may grant more)\n"
           "      --http ADDR:PORT    the HTTP/JSON API (default 127.0.0.1:" HTTP_DEFAULT_PORT "; 'none': off)\n"
           "      --http-token-file FILE  the bearer token that writes over HTTP (POST) need; without\n"
           "                          it they are refused\n"
           "      --http-cert FILE, --http-key FILE\n"
           "                          serve HTTPS with this certificate and key (PEM); an --http\n"
           "                          address that is not loopback needs them and a token\n"
           "      --ha-socket PATH    the HA control socket of the CDB roles (default: ha.sock next to the\n"
           "                          HA link socket)\n"
           "      --ha-control ADDR:PORT  the HA control socket on TCP too (loopback addresses only)\n"
           "      --cdb-listen ADDR:PORT  where this node, as CDB primary, takes secondaries\n"
           "                          (default: the node's cdb-address, else 0.0.0.0:4570)\n"
           "      --cdb-tls-cert FILE, --cdb-tls-key FILE, --cdb-tls-ca FILE\n"
           "                          CDB replication over mutual TLS: this node's certificate\n"
           "                          and key, the CA that signed every node's (PEM; all three)\n"
           "  -l, --log-level LEVEL   error|warning|notice|info|debug, or AREA=LEVEL\n"
           "                          (areas: main amf link supervisor store cluster); may be repeated\n"
           "  -h, --help              this text\n"
           "      --version           print the version\n");
}

static int parse_argv(int argc, char **argv) {
    static const struct option opts[] = {
        {"check", required_argument, NULL, 'n'},
        {"state-dir", required_argument, NULL, 'd'},
        {"socket", required_argument, NULL, 's'},
        {"node", required_argument, NULL, 'N'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"etcd", required_argument, NULL, 'E'},
        {"lease-ttl", required_argument, NULL, 'T'},
        {"http", required_argument, NULL, 'H'},
        {"ha-socket", required_argument, NULL, 'A'},
        {"ha-control", required_argument, NULL, 'C'},
        {"cdb-listen", required_argument, NULL, 'L'},
        {"etcd-cacert", required_argument, NULL, 'R'},
        {"etcd-cert", required_argument, NULL, 'c'},
        {"etcd-key", required_argument, NULL, 'k'},
        {"etcd-user", required_argument, NULL, 'u'},
        {"cdb-tls-cert", required_argument, NULL, 'x'},
        {"cdb-tls-key", required_argument, NULL, 'y'},
        {"cdb-tls-ca", required_argument, NULL, 'z'},
        {"etcd-password-file", required_argument, NULL, 'p'},
        {"http-token-file", required_argument, NULL, 'O'},
        {"http-cert", required_argument, NULL, 'P'},
        {"http-key", required_argument, NULL, 'Q'},
        {},
    };
    int c;
    while ((c = getopt_long(argc, argv, "n:d:s:l:h", opts, NULL)) >= 0) {
        switch (c) {
        case 'n':
            arg_check = optarg;
            break;
        case 'd':
            arg.state_dir = optarg;
            arg.state_dir_given = true;
            break;
        case 's':
            arg.socket = optarg;
            break;
        case 'N':
            arg.node = optarg;
            break;
        case 'E':
            arg.etcd = optarg;
            break;
        case 'R':
            arg.etcd_cacert = optarg;
            break;
        case 'c':
            arg.etcd_cert = optarg;
            break;
        case 'k':
            arg.etcd_key = optarg;
            break;
        case 'u':
            arg.etcd_user = optarg;
            break;
        case 'x':
            arg.cdb_tls_cert = optarg;
            break;
        case 'y':
            arg.cdb_tls_key = optarg;
            break;
        case 'z':
            arg.cdb_tls_ca = optarg;
            break;
        case 'p':
            arg.etcd_password_file = optarg;
            break;
        case 'O':
            arg.http_token_file = optarg;
            break;
        case 'P':
            arg.http_cert = optarg;
            break;
        case 'Q':
            arg.http_key = optarg;
            break;
        case 'H':
            arg.http = optarg;
            arg.http_given = true;
            break;
        case 'A':
            arg.ha_socket = optarg;
            break;
        case 'C':
            arg.ha_control = optarg;
            break;
        case 'L':
            arg.cdb_listen = optarg;
            break;
        case 'T': {
            uint64_t v;
            if (parse_u64_range(optarg, 1, 3600, &v) < 0) {
                fprintf(stderr, "halod: --lease-ttl wants whole seconds from 1 to 3600, not '%s'\n", optarg);
                return -EINVAL;
            }
            arg.lease_ttl = (int64_t)v;
            break;
        }
        case 'l': {
            int k = log_set_level_spec(optarg);
            if (k < 0) {
                fprintf(stderr, "halod: %s in --log-level '%s'\n",
                        k == -ENOENT ? "unknown log area" : "unknown log level", optarg);
                return -EINVAL;
            }
            break;
        }
        case 'h':
            help();
            return 0;
        case 'V':
            printf("halod %s\n", HALO_VERSION_STRING);
            return 0;
        default:
            fprintf(stderr, "Try 'halod --help'.\n");
            return -EINVAL;
        }
    }
    if (!arg_check) {
        if (optind != argc - 1) {
            fprintf(stderr, "halod: expected one cluster description file. Try 'halod --help'.\n");
            return -EINVAL;
        }
        arg.config_path = argv[optind];
    } else if (optind != argc) {
        fprintf(stderr, "halod: --check takes the file as its argument.\n");
        return -EINVAL;
    }
    return 1;
}

static int run_check(void) {
    struct config *c = NULL;
    _cleanup_free_ char *errors = NULL;
    int r = config_load(arg_check, &c, &errors);
    if (r < 0) {
        if (errors && *errors)
            fputs(errors, stderr);
        else
            fprintf(stderr, "%s: %s\n", arg_check, halo_strerror(r));
        return EXIT_FAILURE;
    }
    int failed = amf_ocf_check(c, stderr);
    config_free(c);
    if (failed > 0)
        return EXIT_FAILURE;
    printf("configuration OK\n");
    return EXIT_SUCCESS;
}

int main(int argc, char **argv) {
    struct manager *m = NULL;
    log_set_prefix("halod");
    journal_install(); /* records with their fields, when stderr is the journal */
    tzset();           /* now, not at the first log line, which may be a failover's */
    int r = parse_argv(argc, argv);
    if (r <= 0)
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
    if (arg_check)
        return run_check();
    signal(SIGPIPE, SIG_IGN);
    /* A halod started by another one's component: the mark is the other's, not to be passed on. */
    (void)unsetenv("HALO_OWNER");
    if (!arg.etcd && getenv("HALO_ETCD") && *getenv("HALO_ETCD"))
        arg.etcd = getenv("HALO_ETCD");
    r = manager_new(&arg, &m);
    if (r >= 0)
        r = manager_run(m);
    manager_free(m);
    return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
