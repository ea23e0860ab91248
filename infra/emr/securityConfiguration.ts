/**
 * The EMR security configuration for native LDAP authentication (EMR 6.12+), in the shape of the
 * EMR Management Guide, "Create the Amazon EMR security configuration for LDAP integration":
 * an LDAPConfiguration block under AuthenticationConfiguration, plus the in-transit encryption the
 * LDAP integration requires (EncryptionConfiguration / InTransitEncryptionConfiguration /
 * TLSCertificateConfiguration, PEM certificates from S3). The same guide's rules are enforced by
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
    EncryptionConfiguration: {
      EnableInTransitEncryption: true,
      EnableAtRestEncryption: false,
      InTransitEncryptionConfiguration: {
        TLSCertificateConfiguration: { CertificateProviderType: 'PEM', S3Object: config.inTransitCertificatesS3Object },
      },
    },
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
