/* appliance model: install, list and remove signed models. */
#include "admin.h"
#include "commands.h"
#include "models.h"

#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MODEL_USAGE                                                                                \
    "appliance model add MODEL --bundle BUNDLE [--name NAME] | list | show NAME | remove NAME "    \
    "[--home DIR]"

static void model_help(void)
{
    printf("usage: %s\n\n"
           "  add MODEL --bundle B   verify the OMS bundle B against the publishers the\n"
           "                         policy trusts (and its pinned digests), check MODEL's\n"
           "                         bytes against it, and install it as NAME (default:\n"
           "                         the file name)\n"
           "  list                   installed models: name, root digest, signer, path,\n"
           "                         and what the GGUF says it is (general.name, license)\n"
           "  show NAME              one installed model in full, with its GGUF provenance\n"
           "                         (name, license, source, author, base models, ...)\n"
           "  remove NAME            uninstall (the file itself is left alone)\n"
           "The GGUF provenance is read by the sandboxed engine worker at add time,\n"
           "from the verified sealed copy; the monitor keeps printable text only.\n"
           "generate runs installed models only: -m takes a NAME, or a path whose bytes\n"
           "match an installed model. Each run re-checks the signature against the\n"
           "current trust and the digest against the bytes it loads.\n",
           MODEL_USAGE);
}

/* Terminal progress of the copy-while-hashing of a model over 100 MB:
 * bytes, rate and time left, redrawn in place (stderr only). */
typedef struct copy_bar {
    struct timespec start, last;
} copy_bar;

static double secs_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void show_copy_progress(void *user, uint64_t done, uint64_t total)
{
    copy_bar *bar = user;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (total < 100ull * 1000 * 1000 || (done < total && secs_between(&bar->last, &now) < 0.1))
        return;
    bar->last = now;
    double secs = secs_between(&bar->start, &now), rate = secs > 0 ? (double)done / secs : 0;
    fprintf(stderr, "\rverifying model: %.0f / %.0f MB, %.0f MB/s, ETA %.0fs   ",
            (double)done / 1e6, (double)total / 1e6, rate / 1e6,
            rate > 0 ? (double)(total - done) / rate : 0);
    if (done >= total)
        fputc('\n', stderr);
    fflush(stderr);
}

/* The GGUF provenance, one "  label  value" line each (values are
 * printable text: the monitor checked them). */
static void print_provenance(const model_provenance *p)
{
    for (size_t i = 0; i < p->n; i++)
        printf("  %-22s %s\n", provenance_keys[p->item[i].key].label, p->item[i].value);
}

static int model_add(admin *a, const char *path, const char *bundle, const char *name)
{
    model_record r;
    char err[768];
    copy_bar bar;
    clock_gettime(CLOCK_MONOTONIC, &bar.start);
    bar.last = (struct timespec){0, 0};
    int rc =
        model_install(&a->h, &a->pol, path, bundle, name,
                      isatty(STDERR_FILENO) ? show_copy_progress : NULL, &bar, &r, err, sizeof err);
    if (rc != 0) {
        cli_error("model", "refused: %s", err);
        admin_audit(
            a,
            rc == MODEL_INSTALL_SANDBOX_VIOLATION ? AUDIT_KIND_SANDBOX_VIOLATION
                                                  : AUDIT_KIND_REFUSAL,
            json_pack("{s:s, s:s, s:s}", "action", "model add", "model", path, "reason", err));
        return EXIT_FAIL;
    }
    if (admin_audit(a, AUDIT_KIND_MODEL_LOAD,
                    json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o*}", "action", "install", "name",
                              r.name, "path", r.path, "sha256", r.sha256, "root_digest",
                              r.root_digest, "signer", r.signer, "provenance",
                              provenance_to_json(&r.prov))) != 0)
        return EXIT_FAIL;
    printf("installed %s\n  path        %s\n  root digest %s\n  signer      %s\n", r.name, r.path,
           r.root_digest, r.signer);
    if (r.prov.n)
        printf("GGUF provenance (as the file states it; not covered by the signer's identity):\n");
    print_provenance(&r.prov);
    return EXIT_OK;
}

static int model_show(const admin *a, const char *name)
{
    model_record r;
    char err[512];
    if (model_lookup(&a->h, name, &r, err, sizeof err) != 0) {
        cli_error("model", "%s", err);
        return EXIT_FAIL;
    }
    printf("%s\n  path                   %s\n  sha256                 %s\n"
           "  root digest            %s\n  signer                 %s\n",
           r.name, r.path, r.sha256, r.root_digest, r.signer);
    if (r.prov.n == 0)
        printf("  (no GGUF provenance recorded)\n");
    print_provenance(&r.prov);
    return EXIT_OK;
}

static void model_list(const admin *a)
{
    DIR *d = opendir(a->h.models);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)) != NULL) {
        char name[128], err[256];
        size_t len = strlen(e->d_name);
        model_record r;
        if (len < 6 || len - 5 >= sizeof name || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        snprintf(name, sizeof name, "%.*s", (int)(len - 5), e->d_name);
        if (model_lookup(&a->h, name, &r, err, sizeof err) != 0)
            continue;
        printf("%-24s %.16s  %s\n%24s %s\n", r.name, r.root_digest, r.signer, "", r.path);
        const char *gname = provenance_get(&r.prov, "general.name"),
                   *license = provenance_get(&r.prov, "general.license");
        if (gname || license)
            printf("%24s %s%s%s\n", "", gname ? gname : "", gname && license ? ", license " : "",
                   license ? license : "");
        n++;
    }
    if (d)
        closedir(d);
    if (n == 0)
        printf("no models installed ('appliance model add MODEL --bundle BUNDLE')\n");
}

int cmd_model(const app_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"bundle", required_argument, NULL, 'b'},
        {"name", required_argument, NULL, 'n'},
        {"home", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *bundle = NULL, *name = NULL, *home_flag = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            model_help();
            return EXIT_OK;
        }
        if (c == 'b')
            bundle = optarg;
        else if (c == 'n')
            name = optarg;
        else if (c == 'H')
            home_flag = optarg;
        else
            return cli_bad_option("model", MODEL_USAGE, argc, argv);
    }
    if (optind >= argc)
        return cli_usage_error("model", MODEL_USAGE, "no action given");
    const char *action = argv[optind++];
    int add = strcmp(action, "add") == 0, list = strcmp(action, "list") == 0,
        rem = strcmp(action, "remove") == 0, show = strcmp(action, "show") == 0;
    if (!add && !list && !rem && !show)
        return cli_usage_error("model", MODEL_USAGE, "unknown action '%s'", action);
    if ((add || rem || show) && argc - optind != 1)
        return cli_usage_error("model", MODEL_USAGE, "%s takes one %s", action,
                               add ? "MODEL" : "NAME");
    if (list && optind < argc)
        return cli_usage_error("model", MODEL_USAGE, "unexpected argument '%s'", argv[optind]);
    if (add && !bundle)
        return cli_usage_error("model", MODEL_USAGE, "add needs --bundle BUNDLE");
    admin a;
    if (admin_open(ctx, home_flag, "model", &a) != 0)
        return EXIT_FAIL;
    int rc = EXIT_OK;
    char err[512];
    if (add)
        rc = model_add(&a, argv[optind], bundle, name);
    else if (list)
        model_list(&a);
    else if (show)
        rc = model_show(&a, argv[optind]);
    else if (model_remove(&a.h, argv[optind], err, sizeof err) != 0) {
        cli_error("model", "%s", err);
        rc = EXIT_FAIL;
    } else if (admin_audit(&a, AUDIT_KIND_MODEL_LOAD,
                           json_pack("{s:s, s:s}", "action", "remove", "name", argv[optind])) != 0)
        rc = EXIT_FAIL;
    else
        printf("removed %s\n", argv[optind]);
    admin_close(&a);
    return rc;
}
