/*
 * include/ekglue/model.h: the typed Kubernetes objects ekglue translates: Service, EndpointSlice
 * (discovery.k8s.io/v1) and Node, parsed from the JSON the API server sends (or a manifest converted by
 * ekglue/yaml.h), and ekg_objects_t, a set of them read from files.
 *
 * Only the fields translation needs are kept. Unknown fields are ignored. A missing or mistyped required
 * field makes the object invalid: the parser returns EKG_EOBJECT and diag names the object
 * ("EndpointSlice shop/cart-x2k9: endpoints[3].addresses: expected a list of strings").
 *
 * Memory: each object is one allocation unit owned by whoever holds the pointer; every string and array
 * inside it lives and dies with it (free with the matching ekg_*_free). Strings are never NULL unless the
 * field comment says so. Objects are immutable after parsing, so they can be handed between threads. Thread:
 * any; no shared state.
 */
#ifndef EKGLUE_MODEL_H
#define EKGLUE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "ekglue/error.h"

typedef struct ekg_label {
    const char *key;
    const char *value;
} ekg_label_t;

typedef enum { EKG_PROTOCOL_TCP = 0, EKG_PROTOCOL_UDP, EKG_PROTOCOL_SCTP } ekg_protocol_t;

/* Common metadata. */
typedef struct ekg_meta {
    const char *namespace_; /* "" for cluster-scoped objects (Node) */
    const char *name;
    const char *resource_version; /* "" when absent */
    ekg_label_t *labels;          /* sorted by key */
    size_t nlabels;
} ekg_meta_t;

/* --- Service (v1) --- */
typedef enum {
    EKG_SERVICE_CLUSTER_IP = 0,
    EKG_SERVICE_NODE_PORT,
    EKG_SERVICE_LOAD_BALANCER,
    EKG_SERVICE_EXTERNAL_NAME
} ekg_service_type_t;

typedef struct ekg_service_port {
    const char *name;             /* "" when unnamed (allowed only when the Service has one port) */
    ekg_protocol_t protocol;      /* default TCP */
    const char *app_protocol;     /* NULL when unset */
    int32_t port;                 /* 1..65535, required */
    int32_t target_port;          /* numeric targetPort; 0 when it is a name; == port when absent */
    const char *target_port_name; /* NULL unless targetPort is a string */
} ekg_service_port_t;

typedef struct ekg_service {
    ekg_meta_t meta;
    ekg_service_type_t type;          /* default ClusterIP */
    bool headless;                    /* spec.clusterIP == "None" */
    const char *external_name;        /* NULL unless type ExternalName (then required) */
    const char *traffic_distribution; /* NULL when unset */
    /* metadata.annotations service.kubernetes.io/topology-mode, or the older
     * service.kubernetes.io/topology-aware-hints when the former is absent; NULL when neither is set. */
    const char *topology_mode;
    ekg_service_port_t *ports; /* in spec order; may be empty */
    size_t nports;
} ekg_service_t;

/* --- EndpointSlice (discovery.k8s.io/v1) --- */
typedef enum { EKG_ADDRESS_IPV4 = 0, EKG_ADDRESS_IPV6, EKG_ADDRESS_FQDN } ekg_address_type_t;

/* A tri-state condition: Kubernetes sends true, false or nothing (null). */
typedef enum { EKG_COND_UNSET = -1, EKG_COND_FALSE = 0, EKG_COND_TRUE = 1 } ekg_cond_t;

typedef struct ekg_endpoint {
    const char **addresses; /* at least one */
    size_t naddresses;
    ekg_cond_t ready, serving, terminating; /* as sent; interpretation of UNSET is translation's job */
    const char *node_name;                  /* NULL when unset */
    const char *zone;                       /* NULL when unset */
    const char *hostname;                   /* NULL when unset */
    /* hints.forZones[].name, as sent (has_zone_hints false when absent, empty or malformed: malformed hints
     * are ignored, not an error, like kube-proxy does). */
    bool has_zone_hints;
    const char **hint_zones;
    size_t nhint_zones;
} ekg_endpoint_t;

typedef struct ekg_slice_port {
    const char *name;         /* "" when unnamed */
    int32_t port;             /* -1 when null ("all ports") */
    ekg_protocol_t protocol;  /* default TCP */
    const char *app_protocol; /* NULL when unset */
} ekg_slice_port_t;

typedef struct ekg_endpoint_slice {
    ekg_meta_t meta;
    const char *service_name; /* label kubernetes.io/service-name; NULL when absent (slice then ignored) */
    ekg_address_type_t address_type;
    ekg_endpoint_t *endpoints;
    size_t nendpoints;
    ekg_slice_port_t *ports;
    size_t nports;
} ekg_endpoint_slice_t;

/* --- Node (v1) --- */
typedef struct ekg_node {
    ekg_meta_t meta; /* labels carry topology.kubernetes.io/{region,zone} and kubernetes.io/hostname */
} ekg_node_t;

/* Looks up a label; NULL when absent. */
const char *ekg_meta_label(const ekg_meta_t *meta, const char *key);

/*
 * Parsers: obj is one object as the API sends it (kind may be absent, as in watch events' objects).
 * On success *out is owned by the caller. EKG_EOBJECT (diag names the object and field) when invalid.
 */
ekg_err_t ekg_service_from_json(const cJSON *obj, ekg_service_t **out, ekg_diag_t *diag);
ekg_err_t ekg_endpoint_slice_from_json(const cJSON *obj, ekg_endpoint_slice_t **out, ekg_diag_t *diag);
ekg_err_t ekg_node_from_json(const cJSON *obj, ekg_node_t **out, ekg_diag_t *diag);
void ekg_service_free(ekg_service_t *svc);
void ekg_endpoint_slice_free(ekg_endpoint_slice_t *slice);
void ekg_node_free(ekg_node_t *node);

/*
 * ekg_objects_t: objects read from manifests, in input order. A caller-owned struct: zero-initialize it, add
 * files or buffers, free with ekg_objects_free(). The arrays own their objects.
 */
typedef struct ekg_objects {
    ekg_service_t **services;
    size_t nservices;
    ekg_endpoint_slice_t **slices;
    size_t nslices;
    ekg_node_t **nodes;
    size_t nnodes;
    size_t nskipped; /* invalid objects skipped (each logged at warn level with its reason) */
    size_t nignored; /* objects of other kinds (Pods, ConfigMaps...), ignored silently */
} ekg_objects_t;

/*
 * Adds every Service, EndpointSlice and Node in buf: JSON or YAML, a single object, a `kind: List` or `*List`
 * (items[]), or a multi-document YAML stream, as `kubectl get -o yaml|json` prints them. Invalid objects are
 * skipped (logged, counted in nskipped); the rest are added. Returns EKG_EPARSE (diag with file and line)
 * only when the text itself is not YAML/JSON; then nothing is added.
 */
ekg_err_t ekg_objects_add_buffer(ekg_objects_t *objs, const char *buf, size_t len, const char *source_name,
                                 ekg_diag_t *diag);
ekg_err_t ekg_objects_add_file(ekg_objects_t *objs, const char *path, ekg_diag_t *diag);
void ekg_objects_free(ekg_objects_t *objs);

#endif
