// The GroupChatCluster CustomResourceDefinition, generated from the zod schema.
// scripts/generate-crd.mjs writes it to crds/ and the chart; a unit test fails
// when the checked-in files differ from what this returns.
import { stringify } from 'yaml';
import {
  API_VERSION, CLUSTER_NAME_RULES, ClusterSpecSchema, ClusterStatusSchema, GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION,
} from './v1alpha1.js';
import { structural } from './openapi.js';

export const CRD_NAME = `${PLURAL}.${GROUP}`;
export const CRD_FILE = `${GROUP}_${PLURAL}.yaml`;

export function customResourceDefinition() {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: CRD_NAME },
    spec: {
      group: GROUP,
      names: { kind: KIND, listKind: `${KIND}List`, plural: PLURAL, singular: SINGULAR, shortNames: SHORT_NAMES },
      scope: 'Namespaced',
      versions: [{
        name: VERSION,
        served: true,
        storage: true,
        // The scale subresource scales the gateways, the tier that grows with users (kubectl scale, HPA).
        subresources: {
          status: {},
          scale: { specReplicasPath: '.spec.gateway.replicas', statusReplicasPath: '.status.gatewayReplicas', labelSelectorPath: '.status.gatewaySelector' },
        },
        additionalPrinterColumns: [
          { name: 'Brokers', type: 'integer', description: 'Broker partitions', jsonPath: '.spec.broker.partitions' },
          { name: 'Epoch', type: 'integer', description: 'Topology epoch', jsonPath: '.status.epoch' },
          { name: 'Phase', type: 'string', description: 'Stable, or the doubling phase', jsonPath: '.status.phase' },
          { name: 'Ready', type: 'string', description: 'Pods ready / desired', jsonPath: '.status.ready' },
          { name: 'Status', type: 'string', description: 'Why not ready, or AllReady', jsonPath: '.status.conditions[?(@.type=="Ready")].reason', priority: 1 },
          { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
        ],
        schema: {
          openAPIV3Schema: {
            description: `${KIND} (${API_VERSION}) runs one groupchat system: its roles, their partitions and replicas.`,
            type: 'object',
            required: ['spec'],
            properties: {
              apiVersion: { type: 'string' },
              kind: { type: 'string' },
              metadata: { type: 'object' },
              spec: structural(ClusterSpecSchema),
              status: structural(ClusterStatusSchema),
            },
            'x-kubernetes-validations': CLUSTER_NAME_RULES,
          },
        },
      }],
    },
  };
}

export function customResourceDefinitionYaml(): string {
  return '# Generated from operator/api/v1alpha1.ts by scripts/generate-crd.mjs: do not edit.\n'
    + stringify(customResourceDefinition(), { aliasDuplicateObjects: false, lineWidth: 0 });
}
