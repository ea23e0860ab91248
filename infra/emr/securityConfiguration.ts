/**
 * The EMR security configuration for native LDAP authentication (EMR 6.12+), in the shape of the
 * EMR Management Guide, "Create the Amazon EMR security configuration for LDAP integration":
 * an LDAPConfiguration block under AuthenticationConfiguration, plus the in-transit encryption the
 * LDAP integration requires (EncryptionConfiguration / InTransitEncryptionConfiguration /
 * TLSCertificateConfiguration, PEM certificates from S3) and, unless the cluster config turns it off,
 * at-rest encryption with a KMS key (local disks, EBS volumes, SSE-KMS in S3). The same guide's rules are enforced by
 * the config schema: ldaps:// only, a non-empty access filter, ADDomain for Active Directory; and it
 * must not carry Kerberos, IAM runtime roles or Lake Formation settings, so this builder adds none.
 *
 * LDAPServerType: the guide names the two supported types "Active Directory" and "OpenLDAP" without
 * spelling the API values; this uses "ActiveDirectory" and "OpenLDAP".
 */
import type { ClusterConfig } from '../config.ts';

export interface LdapSecretArns {
  readonly bindCredentialsArn: string;
  readonly certificateArn: string;
}

export function ldapSecurityConfiguration(config: ClusterConfig, secrets: LdapSecretArns): Record<string, unknown> {
  const { ldap } = config;
  return {
    EncryptionConfiguration: encryptionConfiguration(config.encryption),
    AuthenticationConfiguration: {
      LDAPConfiguration: {
        EnableLDAPAuthentication: true,
        LDAPServerURL: ldap.url,
        BindCertificateARN: secrets.certificateArn,
        BindCredentialsARN: secrets.bindCredentialsArn,
        LDAPAccessFilter: ldap.accessFilter,
        LDAPUserSearchBase: ldap.userSearchBase,
        LDAPGroupSearchBase: ldap.groupSearchBase,
        EnableSSHLogin: ldap.enableSshLogin,
        LDAPServerType: ldap.serverType,
        ...(ldap.serverType === 'ActiveDirectory' ? { ActiveDirectoryConfigurations: { ADDomain: ldap.adDomain } } : {}),
      },
    },
  };
}

/**
 * EncryptionConfiguration in the Management Guide's shape: AtRestEncryptionConfiguration with
 * S3EncryptionConfiguration (EncryptionMode SSE-KMS + AwsKmsKey, or SSE-S3) and LocalDiskEncryptionConfiguration
 * (EncryptionKeyProviderType AwsKms + AwsKmsKey, EnableEbsEncryption); InTransitEncryptionConfiguration with a
 * PEM TLSCertificateConfiguration. The config schema has already refused at-rest on without a key.
 */
function encryptionConfiguration(encryption: ClusterConfig['encryption']): Record<string, unknown> {
  const { atRest, inTransit } = encryption;
  const key = atRest.kmsKeyArn;
  return {
    EnableInTransitEncryption: inTransit.enabled,
    EnableAtRestEncryption: atRest.enabled,
    InTransitEncryptionConfiguration: {
      TLSCertificateConfiguration: { CertificateProviderType: 'PEM', S3Object: inTransit.certificatesS3Object },
    },
    ...(atRest.enabled && key !== undefined
      ? {
          AtRestEncryptionConfiguration: {
            S3EncryptionConfiguration: atRest.s3 === 'SSE-KMS' ? { EncryptionMode: 'SSE-KMS', AwsKmsKey: key } : { EncryptionMode: 'SSE-S3' },
            LocalDiskEncryptionConfiguration: { EncryptionKeyProviderType: 'AwsKms', AwsKmsKey: key, EnableEbsEncryption: atRest.ebs },
          },
        }
      : {}),
  };
}
