/* SPDX-License-Identifier: MIT */
/* A description with pools, services and devices, shared by the config and recovery tests. */
#pragma once

static const char POOLED[] = "nodes: {n1: {}, n2: {}, n3: {}}\n"
                             "defaults:\n"
                             "  component: {command: sleep, services: [ios, dtm]}\n"
                             "service-groups:\n"
                             "  s1:\n"
                             "    service-units:\n"
                             "      a: {node: n1, component: {devices: [sda, sdb]}}\n"
                             "      b: {node: n2}\n"
                             "    service-instances: {si: {csis: {c: {}}}}\n"
                             "  s2:\n"
                             "    service-units:\n"
                             "      c: {node: n3}\n"
                             "      d:\n"
                             "        node: n1\n"
                             "        components: {x: {services: []}, y: {}}\n"
                             "    service-instances: {si2: {csis: {c2: {type: t}}}}\n"
                             "pools:\n"
                             "  p1: {processes: [a, b, c]}\n"
                             "  p2: {processes: [d/y], tolerate: 0, participants: report}\n";
