/*
 * src/debug/status_page.c: the debug port's HTML status page (`/`), for an operator to read at a glance.
 *
 * Sections, top to bottom: readiness and source; the snapshot (version, size and age of each type); where
 * objects come from (the Kubernetes sync state of each resource, or the files/demo); the connected xDS
 * clients with their locality and Kubernetes node name, subscriptions, sent/ACKed versions and last NACK;
 * every cluster with its endpoint counts per locality and per health status, and whether its clients get
 * per-zone priorities and why (ekg_snapshot_variant_reason; docs/translation.md, "Zone-aware endpoints"). One
 * self-contained document: inline CSS, no scripts, no external assets; every string that comes from outside
 * (Kubernetes names, node ids, user agents, NACK messages) is HTML-escaped.
 *
 * Thread: libmicrohttpd's thread (via http.c); reads only immutable snapshots and copies of status.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ekglue/clock.h"
#include "ekglue/mem.h"
#include "ekglue/metrics.h"
#include "ekglue/render.h"

#include "debug/debug_internal.h"

#define MAX_CLUSTER_ROWS 1000 /* beyond this the page says how many were left out (see /clusters) */
#define MAX_GROUPS       64   /* distinct localities or health statuses counted per cluster */

static const char *const kube_resource_names[EKG_KUBE__COUNT] = {"Services", "EndpointSlices", "Nodes"};

static const char STYLE[] =
    "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d2330;"
    "background:#f4f6f9}"
    "header{background:#1d2330;color:#fff;padding:12px 24px;display:flex;align-items:baseline;gap:18px;"
    "flex-wrap:wrap}"
    "header h1{font-size:20px;margin:0}header .meta{color:#c5cbd6}"
    "main{padding:8px 24px 24px}"
    "section{background:#fff;border:1px solid #dde2ea;border-radius:6px;margin:14px 0;padding:10px 16px;"
    "overflow-x:auto}"
    "tr.sub td{padding-left:28px;border-bottom:2px solid #dde2ea}"
    "h2{font-size:16px;margin:4px 0 10px}"
    "table{border-collapse:collapse;width:100%}"
    "th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e8ebf0;vertical-align:top}"
    "th{background:#f0f2f6;font-weight:600;white-space:nowrap}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f0f2f6;padding:1px 4px;"
    "border-radius:3px;white-space:nowrap}"
    "table.inner{width:auto}table.inner td,table.inner th{padding:2px 6px;font-size:12px;border:0}"
    ".ok{color:#fff;background:#1a7f37;border-radius:10px;padding:1px 8px;font-size:12px;white-space:nowrap}"
    ".bad{color:#fff;background:#c62828;border-radius:10px;padding:1px 8px;font-size:12px;white-space:nowrap}"
    ".warn{color:#5c3c00;background:#ffd66b;border-radius:10px;padding:1px 8px;font-size:12px;"
    "white-space:nowrap}"
    ".muted{color:#6b7385}.err{color:#b00020}"
    "footer{color:#6b7385;padding:0 24px 16px;font-size:12px}";

/* --- small writers -------------------------------------------------------------------------------------- */

static void esc(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&#39;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

/* "4s", "3m 12s", "2h 5m", "6d 1h"; "-" for negative (never). */
static void put_age(FILE *f, double seconds)
{
    if (!(seconds >= 0)) {
        fputs("&ndash;", f);
        return;
    }
    long long s = (long long)seconds;
    if (s < 60)
        fprintf(f, "%llds", s);
    else if (s < 3600)
        fprintf(f, "%lldm %llds", s / 60, s % 60);
    else if (s < 86400)
        fprintf(f, "%lldh %lldm", s / 3600, s % 3600 / 60);
    else
        fprintf(f, "%lldd %lldh", s / 86400, s % 86400 / 3600);
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* A JSON value as text: strings as they are (a dash when empty), objects {region, zone, subZone} as
 * region/zone/subZone. */
static void put_value(FILE *f, const cJSON *v)
{
    if (cJSON_IsString(v) && v->valuestring[0]) {
        esc(f, v->valuestring);
    } else if (cJSON_IsNumber(v)) {
        fprintf(f, "%g", v->valuedouble);
    } else if (cJSON_IsBool(v)) {
        fputs(cJSON_IsTrue(v) ? "yes" : "no", f);
    } else if (cJSON_IsObject(v)) {
        const char *keys[] = {"region", "zone", "subZone", "sub_zone"};
        bool any = false;
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            const char *s = jstr(v, keys[i]);
            if (s[0]) {
                if (any)
                    fputc('/', f);
                esc(f, s);
                any = true;
            }
        }
        if (!any)
            fputs("<span class=muted>&ndash;</span>", f);
    } else {
        fputs("<span class=muted>&ndash;</span>", f);
    }
}

/* A version as code, or a dash when there is none yet. */
static void put_version(FILE *f, const char *v)
{
    if (!v[0]) {
        fputs("<span class=muted>&ndash;</span>", f);
        return;
    }
    fputs("<code>", f);
    esc(f, v);
    fputs("</code>", f);
}

/* --- sections ------------------------------------------------------------------------------------------- */

static void put_header(const ekg_debug_view_t *v, FILE *f)
{
    fputs("<header><h1>ekglue</h1>", f);
    fputs(v->snap ? "<span class=ok>READY</span>" : "<span class=bad>NOT READY: no snapshot yet</span>", f);
    fprintf(f, "<span class=meta>version %s</span><span class=meta>source: ", EKG_VERSION);
    esc(f, v->source_desc);
    fputs("</span><span class=meta>up ", f);
    put_age(f, ekg_clock_unix_s() - v->started);
    fputs("</span></header>\n", f);
}

static void put_snapshot(const ekg_debug_view_t *v, FILE *f)
{
    fputs("<section id=snapshot><h2>Snapshot", f);
    if (v->snap)
        fprintf(f, " <span class=muted>serial %llu</span>", ekg_snapshot_serial(v->snap));
    fputs("</h2>\n", f);
    if (!v->snap) {
        fputs("<p class=muted>Nothing published yet.</p></section>\n", f);
        return;
    }
    fputs("<table><tr><th>Type</th><th>Resources</th><th>Version</th><th>Since</th></tr>\n", f);
    double now = ekg_clock_unix_s();
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++) {
        ekg_resource_set_t *set = ekg_snapshot_resources(v->snap, (ekg_resource_type_t)t);
        double since = ekg_snapshot_version_since(v->snap, (ekg_resource_type_t)t);
        fprintf(f, "<tr><td>%s</td><td class=num>%zu</td><td><code>%s</code></td><td>",
                ekg_debug_type_names[t], ekg_resource_set_size(set), ekg_resource_set_version(set));
        put_age(f, since > 0 ? now - since : -1);
        fputs(since > 0 ? " ago</td></tr>\n" : "</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    ekg_metrics_values_t m; /* resources dropped for breaking Envoy's validation rules (docs/config.md) */
    ekg_metrics_read(&m);
    const char *sep =
        "<p class=err>Not served, as they break Envoy's validation rules (counted per build; the "
        "log says which and why): ";
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++)
        if (m.resources_invalid[t]) {
            fprintf(f, "%s%s %llu", sep, ekg_debug_type_names[t], m.resources_invalid[t]);
            sep = ", ";
        }
    if (strcmp(sep, ", ") == 0)
        fputs("</p>\n", f);
    fputs("</section>\n", f);
}

static void put_source(const ekg_debug_view_t *v, FILE *f)
{
    if (!v->watcher) {
        fputs("<section id=source><h2>Source</h2><p>Objects from ", f);
        esc(f, v->source_desc);
        fputs(". Files are re-read when they change or on SIGHUP.</p></section>\n", f);
        return;
    }
    fputs("<section id=kubernetes><h2>Kubernetes sync</h2>\n<table><tr><th>Resource</th><th>State</th>"
          "<th>Last sync</th><th>resourceVersion</th><th>Events (add/mod/del/bookmark)</th><th>Relists</th>"
          "<th>Reconnects</th><th>Too old (410)</th><th>Last error</th></tr>\n",
          f);
    for (int r = 0; r < EKG_KUBE__COUNT; r++) {
        ekg_watch_status_t st;
        ekg_watcher_status(v->watcher, (ekg_kube_resource_t)r, &st);
        fprintf(f, "<tr><td>%s</td><td>%s</td><td>", kube_resource_names[r],
                st.synced ? (st.last_error[0] ? "<span class=warn>synced, failing</span>"
                                              : "<span class=ok>synced</span>")
                          : "<span class=bad>not synced</span>");
        put_age(f, st.last_sync_age_s);
        fputs(st.last_sync_age_s >= 0 ? " ago" : "", f);
        fputs("</td><td><code>", f);
        esc(f, st.resource_version);
        fprintf(f,
                "</code></td><td class=num>%llu / %llu / %llu / %llu</td><td class=num>%llu</td>"
                "<td class=num>%llu</td><td class=num>%llu</td><td class=err>",
                st.events[0], st.events[1], st.events[2], st.events[3], st.relists, st.reconnects,
                st.too_old);
        esc(f, st.last_error);
        fputs("</td></tr>\n", f);
    }
    fputs("</table></section>\n", f);
}

/* One client's per-type state as a small inner table. */
/* What a client has of one type (the server's view, /clients "resources"): a count, and the names with their
 * versions (content hashes: what a delta client was sent as `version`) folded away. */
static void put_client_resources(FILE *f, const cJSON *type)
{
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(type, "resources");
    const cJSON *total = cJSON_GetObjectItemCaseSensitive(type, "resources_total");
    if (!cJSON_IsArray(res) || !res->child) {
        fputs("<span class=muted>none</span>", f);
        return;
    }
    fprintf(f, "<details><summary>%.0f</summary>", cJSON_IsNumber(total) ? total->valuedouble : 0.0);
    for (const cJSON *r = res->child; r; r = r->next) {
        fputs("<code>", f);
        esc(f, jstr(r, "name"));
        fputs("</code> ", f);
        const char *v = jstr(r, "version");
        if (v[0])
            put_version(f, v);
        else
            esc(f, jstr(r, "state"));
        fputs("<br>", f);
    }
    if (cJSON_IsNumber(total) && total->valuedouble > cJSON_GetArraySize(res))
        fprintf(f, "<span class=muted>(%.0f more)</span>", total->valuedouble - cJSON_GetArraySize(res));
    fputs("</details>", f);
}

static void put_client_types(FILE *f, const cJSON *types)
{
    if (!cJSON_IsObject(types) || !types->child) {
        fputs("<span class=muted>no subscriptions</span>", f);
        return;
    }
    fputs("<table class=inner><tr><th>Type</th><th>Subscription</th><th>Sent</th><th>ACKed</th>"
          "<th>Last NACK</th><th>Resources it has</th></tr>",
          f);
    for (const cJSON *t = types->child; t; t = t->next) {
        const cJSON *names = cJSON_GetObjectItemCaseSensitive(t, "names");
        fputs("<tr><td>", f);
        esc(f, t->string);
        fputs("</td><td>", f);
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "subscribed")))
            fputs("<span class=muted>none</span>", f);
        else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "wildcard")))
            fputs("all (wildcard)", f);
        else if (cJSON_IsArray(names))
            fprintf(f, "%d names", cJSON_GetArraySize(names));
        else if (cJSON_IsNumber(names))
            fprintf(f, "%d names", names->valueint);
        else
            fputs("named", f);
        fputs("</td><td>", f);
        put_version(f, jstr(t, "sent_version"));
        fputs("</td><td>", f);
        put_version(f, jstr(t, "acked_version"));
        fputs("</td><td>", f);
        const cJSON *nack = cJSON_GetObjectItemCaseSensitive(t, "nack");
        if (cJSON_IsObject(nack)) {
            const cJSON *when = cJSON_GetObjectItemCaseSensitive(nack, "time");
            fputs("<span class=err>", f);
            esc(f, jstr(nack, "message"));
            fputs("</span> <span class=muted>(", f);
            if (cJSON_IsNumber(when) && when->valuedouble > 1e9) {
                put_age(f, ekg_clock_unix_s() - when->valuedouble);
                fputs(" ago", f);
            } else {
                put_value(f, when);
            }
            fputs(")</span>", f);
        } else {
            fputs("<span class=muted>&ndash;</span>", f);
        }
        fputs("</td><td>", f);
        put_client_resources(f, t);
        fputs("</td></tr>", f);
    }
    fputs("</table>", f);
}

static void put_clients(const ekg_debug_view_t *v, FILE *f)
{
    int n = cJSON_IsArray(v->clients) ? cJSON_GetArraySize(v->clients) : 0;
    fprintf(f, "<section id=clients><h2>xDS clients <span class=muted>(%d connected)</span></h2>\n", n);
    if (!cJSON_IsArray(v->clients)) {
        fputs("<p class=muted>The client listing is not available.</p></section>\n", f);
        return;
    }
    if (n == 0) {
        fputs("<p class=muted>No client is connected.</p></section>\n", f);
        return;
    }
    /* Two rows per client: who it is, then (indented, full width) what it subscribed to and got. */
    fputs("<table><tr><th>Node id</th><th>Cluster</th><th>Locality</th><th>Node name</th><th>User agent</th>"
          "<th>Peer</th><th>API</th><th>Protocol</th></tr>\n",
          f);
    for (const cJSON *c = v->clients->child; c; c = c->next) {
        static const char *const cols[] = {"node_id",    "cluster", "locality", "node_name",
                                           "user_agent", "peer",    "api",      "mode"};
        fputs("<tr>", f);
        for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
            fputs(i == 0 ? "<td><code>" : "<td>", f);
            put_value(f, cJSON_GetObjectItemCaseSensitive(c, cols[i]));
            fputs(i == 0 ? "</code></td>" : "</td>", f);
        }
        fputs("</tr>\n<tr class=sub><td colspan=8>", f);
        put_client_types(f, cJSON_GetObjectItemCaseSensitive(c, "types"));
        fputs("</td></tr>\n", f);
    }
    fputs("</table></section>\n", f);
}

/* Counts of endpoints by a label (a locality or a health status), in order of first appearance. */
typedef struct groups {
    char *label[MAX_GROUPS]; /* owned */
    unsigned count[MAX_GROUPS];
    size_t n;
    unsigned other; /* beyond MAX_GROUPS */
} groups_t;

static void groups_add(groups_t *g, const char *label)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->label[i], label) == 0) {
            g->count[i]++;
            return;
        }
    if (g->n == MAX_GROUPS) {
        g->other++;
        return;
    }
    g->label[g->n] = ekg_xstrdup(label);
    g->count[g->n++] = 1;
}

static void groups_put(FILE *f, groups_t *g)
{
    if (!g->n && !g->other)
        fputs("<span class=muted>&ndash;</span>", f);
    for (size_t i = 0; i < g->n; i++) {
        fputs(i ? "<br>" : "", f);
        esc(f, g->label[i]);
        fprintf(f, ": %u", g->count[i]);
        free(g->label[i]);
    }
    if (g->other)
        fprintf(f, "%sother: %u", g->n ? "<br>" : "", g->other);
    g->n = 0;
}

/* Endpoints of a ClusterLoadAssignment (canonical JSON) by locality and by health; returns the total. */
static unsigned count_endpoints(const cJSON *cla, groups_t *by_locality, groups_t *by_health)
{
    unsigned total = 0;
    const cJSON *lles = cJSON_GetObjectItemCaseSensitive(cla, "endpoints"), *lle;
    cJSON_ArrayForEach(lle, lles)
    {
        const cJSON *loc = cJSON_GetObjectItemCaseSensitive(lle, "locality");
        char label[300];
        const char *region = jstr(loc, "region"), *zone = jstr(loc, "zone"), *sub = jstr(loc, "subZone");
        if (!region[0] && !zone[0] && !sub[0])
            snprintf(label, sizeof(label), "(no locality)");
        else /* an empty region or zone shows as a dash, so "-/us-east1-c" is not mistaken for a region */
            snprintf(label, sizeof(label), "%s/%s%s%s", region[0] ? region : "-", zone[0] ? zone : "-",
                     sub[0] ? "/" : "", sub);
        const cJSON *lbs = cJSON_GetObjectItemCaseSensitive(lle, "lbEndpoints"), *lb;
        cJSON_ArrayForEach(lb, lbs)
        {
            const char *health = jstr(lb, "healthStatus");
            groups_add(by_locality, label);
            groups_add(by_health, health[0] ? health : "UNKNOWN");
            total++;
        }
    }
    return total;
}

/* Whether clients of the cluster named `name` get per-zone priorities, and why (or why not). */
static void put_priorities(const ekg_debug_view_t *v, const char *name, FILE *f)
{
    static const char NOT_APPLIED[] = "not applied: ";
    const char *why =
        v->snap ? ekg_snapshot_variant_reason(v->snap, EKG_RESOURCE_LOAD_ASSIGNMENT, name) : NULL;
    if (!why) {
        fputs("<span class=muted>no</span>", f);
    } else if (strncmp(why, NOT_APPLIED, sizeof(NOT_APPLIED) - 1) == 0) {
        fputs("<span class=warn>no</span> ", f);
        esc(f, why + sizeof(NOT_APPLIED) - 1);
    } else {
        fputs("<span class=ok>yes</span> ", f);
        esc(f, why);
    }
}

static ekg_err_t put_clusters(const ekg_debug_view_t *v, FILE *f)
{
    ekg_err_t err = EKG_OK;
    ekg_resource_set_t *clusters = v->snap ? ekg_snapshot_resources(v->snap, EKG_RESOURCE_CLUSTER) : NULL;
    ekg_resource_set_t *las = v->snap ? ekg_snapshot_resources(v->snap, EKG_RESOURCE_LOAD_ASSIGNMENT) : NULL;
    size_t n = clusters ? ekg_resource_set_size(clusters) : 0;
    groups_t by_locality = {0}, by_health = {0};
    cJSON *cluster = NULL, *cla = NULL;
    fprintf(f, "<section id=clusters><h2>Clusters <span class=muted>(%zu)</span></h2>\n", n);
    if (!n) {
        fputs("<p class=muted>No clusters.</p></section>\n", f);
        return EKG_OK;
    }
    fputs("<table><tr><th>Name</th><th>Discovery</th><th>Endpoints</th><th>By locality</th><th>By health</th>"
          "<th>Zone priorities</th></tr>\n",
          f);
    for (size_t i = 0; i < n && i < MAX_CLUSTER_ROWS; i++) {
        const ekg_resource_t *r = ekg_resource_set_at(clusters, i);
        if ((err = ekg_render_resource(r, &cluster)) != EKG_OK)
            goto out;
        const char *type = jstr(cluster, "type");
        const cJSON *assignment = cJSON_GetObjectItemCaseSensitive(cluster, "loadAssignment");
        const ekg_resource_t *la = las ? ekg_resource_set_find(las, ekg_resource_name(r)) : NULL;
        if (la) {
            if ((err = ekg_render_resource(la, &cla)) != EKG_OK)
                goto out;
            assignment = cla;
        }
        unsigned total = count_endpoints(assignment, &by_locality, &by_health);
        fputs("<tr><td><code>", f);
        esc(f, ekg_resource_name(r));
        fputs("</code></td><td>", f);
        esc(f, type[0] ? type : "STATIC");
        if (strcmp(type, "EDS") == 0 && !la)
            fputs(" <span class=bad>no assignment</span>", f);
        fprintf(f, "</td><td class=num>%u</td><td>", total);
        groups_put(f, &by_locality);
        fputs("</td><td>", f);
        groups_put(f, &by_health);
        fputs("</td><td>", f);
        put_priorities(v, ekg_resource_name(r), f);
        fputs("</td></tr>\n", f);
        cJSON_Delete(cluster);
        cJSON_Delete(cla);
        cluster = cla = NULL;
    }
    fputs("</table>", f);
    if (n > MAX_CLUSTER_ROWS)
        fprintf(f, "<p class=muted>%zu more clusters not shown: see <a href=\"/clusters\">/clusters</a>.</p>",
                n - MAX_CLUSTER_ROWS);
    fputs("</section>\n", f);
out:
    for (size_t i = 0; i < by_locality.n; i++)
        free(by_locality.label[i]);
    for (size_t i = 0; i < by_health.n; i++)
        free(by_health.label[i]);
    cJSON_Delete(cluster);
    cJSON_Delete(cla);
    return err;
}

ekg_err_t ekg_debug_status_page(const ekg_debug_view_t *v, FILE *f)
{
    fputs("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>ekglue status</title>"
          "<meta name=viewport content=\"width=device-width,initial-scale=1\"><style>",
          f);
    fputs(STYLE, f);
    fputs("</style></head><body>\n", f);
    put_header(v, f);
    fputs("<main>\n", f);
    put_snapshot(v, f);
    put_source(v, f);
    put_clients(v, f);
    ekg_err_t err = put_clusters(v, f);
    fputs("</main>\n<footer>Also: <a href=\"/clusters\">/clusters</a> <a href=\"/endpoints\">/endpoints</a> "
          "<a href=\"/localities\">/localities</a> <a href=\"/clients\">/clients</a> "
          "<a href=\"/config_dump\">/config_dump</a> <a href=\"/metrics\">/metrics</a> "
          "(add ?format=yaml for YAML; /endpoints?region=R&amp;zone=Z&amp;node=N for what a client there "
          "gets)</footer>\n</body></html>\n",
          f);
    return err;
}
