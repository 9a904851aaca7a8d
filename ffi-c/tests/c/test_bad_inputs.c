/*
 * The shared table of bad inputs (tests/bad-inputs.tsv), run through the C ABI: each case must
 * fail with the result code of its error kind and a message containing its `says` column. The
 * Python tests run the same table (py/tests/test_bad_inputs.py). Link and sysctl cases run in
 * an anonymous namespace this test creates (root needed; CI runs as root). Run under
 * ASan/UBSan by `cargo xtask c-test`, which defines UNDERLAY_TESTS_DIR.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "underlay.h"

#ifndef UNDERLAY_TESTS_DIR
#error "define UNDERLAY_TESTS_DIR (the repository's tests/ directory)"
#endif

#define MAX_ARGS 6

static underlay_netns *ns;
static underlay_handle *h;

/* "InvalidArgument" -> "UNDERLAY_RESULT_INVALID_ARGUMENT". */
static void result_name(const char *kind, char *out, size_t size) {
  size_t k = (size_t)snprintf(out, size, "UNDERLAY_RESULT_");
  for (const char *c = kind; *c && k + 2 < size; c++) {
    if (*c >= 'A' && *c <= 'Z' && c != kind)
      out[k++] = '_';
    out[k++] = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
  }
  out[k] = 0;
}

static underlay_result link_builder_run(underlay_link_builder *b, underlay_result made) {
  underlay_link *l = NULL;
  if (made != UNDERLAY_RESULT_OK)
    return made;
  underlay_result res = underlay_link_builder_execute(b, &l);
  underlay_link_builder_free(b);
  underlay_link_free(l);
  return res;
}

/* Runs case `op` with `argv`; sets *unknown when the op is not known. */
static underlay_result run(const char *op, char **argv, int argc, int *unknown) {
  underlay_link_builder *b = NULL;
  *unknown = 0;
  if (strcmp(op, "netns_create") == 0 && argc == 1) {
    underlay_netns *n = NULL;
    underlay_result res = underlay_netns_create(argv[0], &n);
    if (res == UNDERLAY_RESULT_OK) /* a bad input that was accepted: undo it */
      underlay_netns_delete(argv[0]);
    underlay_netns_free(n);
    return res;
  }
  if (strcmp(op, "netns_open") == 0 && argc == 1) {
    underlay_netns *n = NULL;
    underlay_result res = underlay_netns_open(argv[0], &n);
    underlay_netns_free(n);
    return res;
  }
  if (strcmp(op, "netns_open_path") == 0 && argc == 1) {
    underlay_netns *n = NULL;
    underlay_result res = underlay_netns_open_path(argv[0], &n);
    underlay_netns_free(n);
    return res;
  }
  if (strcmp(op, "route_new") == 0 && argc == 1) {
    underlay_route *r = NULL;
    underlay_result res = underlay_route_new(argv[0], &r);
    underlay_route_free(r);
    return res;
  }
  if (strcmp(op, "route_default_via") == 0 && argc == 1) {
    underlay_route *r = NULL;
    underlay_result res = underlay_route_default_via(argv[0], &r);
    underlay_route_free(r);
    return res;
  }
  if (strcmp(op, "route_via") == 0 && argc == 2) {
    underlay_route *r = NULL;
    underlay_result res = underlay_route_new(argv[0], &r);
    if (res == UNDERLAY_RESULT_OK)
      res = underlay_route_set_via(r, argv[1]);
    underlay_route_free(r);
    return res;
  }
  if (strcmp(op, "pool") == 0 && argc == 1) {
    underlay_ipam_network *n = NULL;
    underlay_result res = underlay_ipam_network_new("n", &n);
    if (res == UNDERLAY_RESULT_OK)
      res = underlay_ipam_network_add_pool(n, argv[0]);
    underlay_ipam_network_free(n);
    return res;
  }
  if ((strcmp(op, "ipam_allocate") == 0 && (argc == 2 || argc == 3)) ||
      (strcmp(op, "ipam_boot_id") == 0 && argc == 1) ||
      (strcmp(op, "ipam_hold") == 0 && argc == 3)) {
    underlay_ipam_store *st = NULL;
    underlay_ipam_network *n = NULL;
    underlay_ipam *ipam = NULL;
    underlay_lease *l = NULL;
    underlay_string_list *holders = NULL;
    underlay_result res = underlay_ipam_store_new_memory(&st);
    if (res == UNDERLAY_RESULT_OK)
      res = underlay_ipam_network_new("n", &n);
    if (res == UNDERLAY_RESULT_OK)
      res = underlay_ipam_network_add_pool(n, "10.0.0.0/24");
    if (res == UNDERLAY_RESULT_OK)
      res = underlay_ipam_create(st, n, &ipam);
    if (res == UNDERLAY_RESULT_OK) {
      if (op[5] == 'a')
        res = underlay_ipam_allocate(ipam, argv[0], argv[1], argc == 3 ? argv[2] : NULL, &l);
      else if (op[5] == 'h')
        res = underlay_ipam_hold(ipam, argv[0], "eth0", argv[1], argv[2], &holders);
      else
        res = underlay_ipam_set_boot_id(ipam, argv[0]);
    }
    underlay_string_list_free(holders);
    underlay_lease_free(l);
    underlay_ipam_free(ipam);
    underlay_ipam_network_free(n);
    underlay_ipam_store_free(st);
    return res;
  }
  if (strcmp(op, "vlan") == 0 && argc == 2)
    return link_builder_run(b, underlay_link_builder_vlan(h, argv[0], (uint16_t)atoi(argv[1]), &b));
  if (strcmp(op, "vlan_protocol") == 0 && argc == 3) {
    underlay_result res = underlay_link_builder_vlan(h, argv[0], (uint16_t)atoi(argv[1]), &b);
    if (res == UNDERLAY_RESULT_OK)
      res = underlay_link_builder_vlan_protocol(b, argv[2]);
    underlay_link_builder_free(b);
    return res;
  }
  if (strcmp(op, "macvlan") == 0 && argc == 3)
    return link_builder_run(b, underlay_link_builder_macvlan(h, argv[0], argv[1], argv[2], &b));
  if (strcmp(op, "ipvlan") == 0 && argc == 4)
    return link_builder_run(
        b, underlay_link_builder_ipvlan(h, argv[0], argv[1], argv[2], argv[3], &b));
  if (strcmp(op, "link_set_mac") == 0 && argc == 2)
    return underlay_handle_link_set_mac(h, argv[0], argv[1]);
  if (strcmp(op, "link_get") == 0 && argc == 1) {
    underlay_link *l = NULL;
    underlay_result res = underlay_handle_link_get(h, argv[0], &l);
    underlay_link_free(l);
    return res;
  }
  if (strcmp(op, "arp_ignore") == 0 && argc == 2)
    return underlay_netns_set_arp_ignore(ns, argv[0], atoi(argv[1]));
  if (strcmp(op, "arp_announce") == 0 && argc == 2)
    return underlay_netns_set_arp_announce(ns, argv[0], atoi(argv[1]));
  if (strcmp(op, "accept_dad") == 0 && argc == 2)
    return underlay_netns_set_accept_dad(ns, argv[0], atoi(argv[1]));
  if (strcmp(op, "dhcp") == 0 && (argc == 2 || argc == 3)) {
    underlay_network_spec *sp = NULL;
    underlay_result res = underlay_network_spec_macvlan("n", "lo", "bridge", &sp);
    if (res == UNDERLAY_RESULT_OK)
      res = underlay_network_spec_set_dhcp(sp, (uint32_t)atoi(argv[0]), (uint32_t)atoi(argv[1]),
                                           argc == 3 ? argv[2] : NULL);
    underlay_network_spec_free(sp);
    return res;
  }
  if (strcmp(op, "announce") == 0 && argc >= 1) {
    const char *ips[MAX_ARGS];
    for (int i = 1; i < argc; i++)
      ips[i - 1] = argv[i];
    return underlay_netns_announce(ns, 1, argv[0], ips, (size_t)(argc - 1));
  }
  *unknown = 1;
  return UNDERLAY_RESULT_OK;
}

int main(void) {
  const char *path = UNDERLAY_TESTS_DIR "/bad-inputs.tsv";
  FILE *f = fopen(path, "r");
  char line[4096];
  int cases = 0, failures = 0;
  if (f == NULL) {
    fprintf(stderr, "test_bad_inputs: cannot open %s\n", path);
    return 1;
  }
  if (geteuid() != 0) {
    printf("test_bad_inputs: skipped: needs root for its namespace (CI runs it as root)\n");
    fclose(f);
    return 0;
  }
  if (underlay_netns_create_anonymous(&ns) != UNDERLAY_RESULT_OK ||
      underlay_handle_for_netns(ns, &h) != UNDERLAY_RESULT_OK) {
    fprintf(stderr, "test_bad_inputs: no namespace: %s\n", underlay_last_error_message());
    fclose(f);
    return 1;
  }
  while (fgets(line, sizeof line, f) != NULL) {
    char *fields[3 + MAX_ARGS];
    int n = 0;
    line[strcspn(line, "\n")] = 0;
    if (line[0] == '#' || line[0] == 0)
      continue;
    for (char *p = line; n < 3 + MAX_ARGS;) {
      fields[n++] = p;
      char *tab = strchr(p, '\t');
      if (tab == NULL)
        break;
      *tab = 0;
      p = tab + 1;
    }
    for (int i = 0; i < n; i++)
      if (strcmp(fields[i], "<empty>") == 0)
        fields[i][0] = 0;
    if (n < 3) {
      fprintf(stderr, "FAIL %s: malformed line (op, kind, says, args...)\n", path);
      failures++;
      continue;
    }
    char want[64];
    int unknown = 0;
    result_name(fields[1], want, sizeof want);
    underlay_result got = run(fields[0], fields + 3, n - 3, &unknown);
    cases++;
    const char *msg = underlay_last_error_message();
    if (unknown) {
      fprintf(stderr, "FAIL %s `%s`: no such operation (or wrong argument count) in this runner\n",
              fields[0], fields[3 < n ? 3 : 0]);
      failures++;
    } else if (strcmp(underlay_result_name(got), want) != 0) {
      fprintf(stderr, "FAIL %s(%s): got %s, want %s (%s)\n", fields[0], n > 3 ? fields[3] : "",
              underlay_result_name(got), want, got == UNDERLAY_RESULT_OK ? "" : msg);
      failures++;
    } else if (strstr(msg, fields[2]) == NULL) {
      fprintf(stderr, "FAIL %s(%s): message `%s` lacks `%s`\n", fields[0], n > 3 ? fields[3] : "",
              msg, fields[2]);
      failures++;
    }
  }
  fclose(f);
  underlay_handle_free(h);
  underlay_netns_free(ns);
  printf("test_bad_inputs: %d cases from %s, %d failed\n", cases, path, failures);
  return failures == 0 && cases > 0 ? 0 : 1;
}
