/*
 * src/proto/grpc_defs.h: the list of .proto files whose reflection ekglue loads from libgrpc.
 *
 * libgrpc.so exports, for each Envoy/xDS proto it was built with, a `<file>_proto_upbdefinit` table holding
 * the file's serialized FileDescriptorProto and its dependencies. EKG_GRPC_DEFS(X) calls X(symbol) for the
 * roots ekglue needs; their dependencies come along. Used by src/proto/registry.c at run time (JSON and Any
 * types) and by proto/tools/descset.c at build time (a descriptor set protoc compiles proto/ against).
 * Thread: none (a macro list).
 */
#ifndef EKG_PROTO_GRPC_DEFS_H
#define EKG_PROTO_GRPC_DEFS_H

#define EKG_GRPC_DEFS(X)                                                                                     \
    X(envoy_config_cluster_v3_cluster_proto_upbdefinit)                                                      \
    X(envoy_config_endpoint_v3_endpoint_proto_upbdefinit)                                                    \
    X(envoy_config_listener_v3_listener_proto_upbdefinit)                                                    \
    X(envoy_config_route_v3_route_proto_upbdefinit)                                                          \
    X(envoy_extensions_filters_network_http_connection_manager_v3_http_connection_manager_proto_upbdefinit)  \
    X(envoy_extensions_filters_http_router_v3_router_proto_upbdefinit)                                       \
    X(envoy_extensions_filters_http_fault_v3_fault_proto_upbdefinit)                                         \
    X(envoy_extensions_filters_http_rbac_v3_rbac_proto_upbdefinit)                                           \
    X(envoy_extensions_clusters_aggregate_v3_cluster_proto_upbdefinit)                                       \
    X(envoy_extensions_transport_sockets_tls_v3_tls_proto_upbdefinit)                                        \
    X(envoy_service_discovery_v3_discovery_proto_upbdefinit)                                                 \
    X(envoy_service_status_v3_csds_proto_upbdefinit)                                                         \
    X(xds_type_v3_typed_struct_proto_upbdefinit)                                                             \
    X(google_protobuf_any_proto_upbdefinit)                                                                  \
    X(google_protobuf_duration_proto_upbdefinit)                                                             \
    X(google_protobuf_struct_proto_upbdefinit)                                                               \
    X(google_protobuf_wrappers_proto_upbdefinit)

#endif
