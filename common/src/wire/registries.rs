//! IANA "Internet Key Exchange Version 2 (IKEv2) Parameters" registries as Rust
//! enums. Every registry keeps an `Unknown(n)` case so that values assigned
//! after this code was written survive decoding and re-encoding unchanged.
//!
//! Build values with the named variants or `from_value(n)`; `Unknown(n)` is
//! only meant for values with no named variant (`from_value` never returns
//! `Unknown` for a named value, so `Unknown(34)` would not round-trip).

use std::fmt;

/// Declares a registry enum: named variants with their IANA value, IANA name
/// and a short name for log lines, plus `Unknown(n)`.
macro_rules! registry {
    (
        $(#[$meta:meta])*
        $name:ident: $repr:ty {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal, $iana:literal, $short:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* #[doc = $iana] $variant, )*
            /// A value this implementation has no name for.
            Unknown($repr),
        }

        impl $name {
            /// Every named variant, in registry order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )* ];

            /// The variant for a wire value (`Unknown` only for unnamed values).
            pub const fn from_value(value: $repr) -> Self {
                match value {
                    $( $value => $name::$variant, )*
                    other => $name::Unknown(other),
                }
            }

            /// The wire value.
            pub const fn value(self) -> $repr {
                match self {
                    $( $name::$variant => $value, )*
                    $name::Unknown(value) => value,
                }
            }

            /// The name in the IANA registry, `None` for `Unknown`.
            pub const fn iana_name(self) -> Option<&'static str> {
                match self {
                    $( $name::$variant => Some($iana), )*
                    $name::Unknown(_) => None,
                }
            }

            /// A short name for log lines, `None` for `Unknown`.
            pub const fn short_name(self) -> Option<&'static str> {
                match self {
                    $( $name::$variant => Some($short), )*
                    $name::Unknown(_) => None,
                }
            }
        }

        impl From<$repr> for $name {
            fn from(value: $repr) -> Self {
                $name::from_value(value)
            }
        }

        impl From<$name> for $repr {
            fn from(value: $name) -> Self {
                value.value()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.iana_name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "UNKNOWN({})", self.value()),
                }
            }
        }
    };
}

registry! {
    /// Exchange types (RFC 7296 §3.1 and later RFCs).
    ExchangeType: u8 {
        IkeSaInit = 34, "IKE_SA_INIT", "IKE_SA_INIT";
        IkeAuth = 35, "IKE_AUTH", "IKE_AUTH";
        CreateChildSa = 36, "CREATE_CHILD_SA", "CREATE_CHILD_SA";
        Informational = 37, "INFORMATIONAL", "INFORMATIONAL";
        IkeSessionResume = 38, "IKE_SESSION_RESUME", "IKE_SESSION_RESUME";
        GsaAuth = 39, "GSA_AUTH", "GSA_AUTH";
        GsaRegistration = 40, "GSA_REGISTRATION", "GSA_REGISTRATION";
        GsaRekey = 41, "GSA_REKEY", "GSA_REKEY";
        IkeIntermediate = 43, "IKE_INTERMEDIATE", "IKE_INTERMEDIATE";
        IkeFollowupKe = 44, "IKE_FOLLOWUP_KE", "IKE_FOLLOWUP_KE";
    }
}

registry! {
    /// Payload types (RFC 7296 §3.2, RFC 7383, group key management).
    PayloadType: u8 {
        NoNextPayload = 0, "No Next Payload", "-";
        SecurityAssociation = 33, "Security Association", "SA";
        KeyExchange = 34, "Key Exchange", "KE";
        IdInitiator = 35, "Identification - Initiator", "IDi";
        IdResponder = 36, "Identification - Responder", "IDr";
        Certificate = 37, "Certificate", "CERT";
        CertificateRequest = 38, "Certificate Request", "CERTREQ";
        Authentication = 39, "Authentication", "AUTH";
        Nonce = 40, "Nonce", "No";
        Notify = 41, "Notify", "N";
        Delete = 42, "Delete", "D";
        VendorId = 43, "Vendor ID", "V";
        TsInitiator = 44, "Traffic Selector - Initiator", "TSi";
        TsResponder = 45, "Traffic Selector - Responder", "TSr";
        Encrypted = 46, "Encrypted and Authenticated", "SK";
        Configuration = 47, "Configuration", "CP";
        Eap = 48, "Extensible Authentication", "EAP";
        GenericSecurePasswordMethod = 49, "Generic Secure Password Method", "GSPM";
        GroupId = 50, "Group Identification", "IDg";
        GroupSa = 51, "Group Security Association", "GSA";
        KeyDownload = 52, "Key Download", "KD";
        EncryptedFragment = 53, "Encrypted and Authenticated Fragment", "SKF";
        PuzzleSolution = 54, "Puzzle Solution", "PS";
    }
}

registry! {
    /// Protocol IDs of proposals, notifications and deletes (RFC 7296 §3.3.1).
    ProtocolId: u8 {
        /// Sent when no SPI is present (RFC 7296 §3.10).
        None = 0, "none", "-";
        Ike = 1, "IKE", "IKE";
        Ah = 2, "AH", "AH";
        Esp = 3, "ESP", "ESP";
        FcEspHeader = 4, "FC_ESP_HEADER", "FC_ESP_HEADER";
        FcCtAuthentication = 5, "FC_CT_AUTHENTICATION", "FC_CT_AUTH";
    }
}

registry! {
    /// Transform types (RFC 7296 §3.3.2, RFC 9370 additional key exchanges).
    TransformType: u8 {
        Encryption = 1, "Encryption Algorithm (ENCR)", "ENCR";
        Prf = 2, "Pseudorandom Function (PRF)", "PRF";
        Integrity = 3, "Integrity Algorithm (INTEG)", "INTEG";
        KeyExchange = 4, "Key Exchange Method (KE)", "KE";
        SequenceNumbers = 5, "Sequence Numbers (SN)", "ESN";
        AdditionalKe1 = 6, "Additional Key Exchange 1 (ADDKE1)", "ADDKE1";
        AdditionalKe2 = 7, "Additional Key Exchange 2 (ADDKE2)", "ADDKE2";
        AdditionalKe3 = 8, "Additional Key Exchange 3 (ADDKE3)", "ADDKE3";
        AdditionalKe4 = 9, "Additional Key Exchange 4 (ADDKE4)", "ADDKE4";
        AdditionalKe5 = 10, "Additional Key Exchange 5 (ADDKE5)", "ADDKE5";
        AdditionalKe6 = 11, "Additional Key Exchange 6 (ADDKE6)", "ADDKE6";
        AdditionalKe7 = 12, "Additional Key Exchange 7 (ADDKE7)", "ADDKE7";
    }
}

registry! {
    /// Transform type 1: encryption algorithms.
    EncrId: u16 {
        DesIv64 = 1, "ENCR_DES_IV64", "DES_IV64";
        Des = 2, "ENCR_DES", "DES";
        TripleDes = 3, "ENCR_3DES", "3DES";
        Rc5 = 4, "ENCR_RC5", "RC5";
        Idea = 5, "ENCR_IDEA", "IDEA";
        Cast = 6, "ENCR_CAST", "CAST";
        Blowfish = 7, "ENCR_BLOWFISH", "BLOWFISH";
        TripleIdea = 8, "ENCR_3IDEA", "3IDEA";
        DesIv32 = 9, "ENCR_DES_IV32", "DES_IV32";
        Null = 11, "ENCR_NULL", "NULL";
        AesCbc = 12, "ENCR_AES_CBC", "AES_CBC";
        AesCtr = 13, "ENCR_AES_CTR", "AES_CTR";
        AesCcm8 = 14, "ENCR_AES_CCM_8", "AES_CCM_8";
        AesCcm12 = 15, "ENCR_AES_CCM_12", "AES_CCM_12";
        AesCcm16 = 16, "ENCR_AES_CCM_16", "AES_CCM_16";
        AesGcm8 = 18, "ENCR_AES_GCM_8", "AES_GCM_8";
        AesGcm12 = 19, "ENCR_AES_GCM_12", "AES_GCM_12";
        AesGcm16 = 20, "ENCR_AES_GCM_16", "AES_GCM_16";
        NullAuthAesGmac = 21, "ENCR_NULL_AUTH_AES_GMAC", "NULL_AES_GMAC";
        CamelliaCbc = 23, "ENCR_CAMELLIA_CBC", "CAMELLIA_CBC";
        CamelliaCtr = 24, "ENCR_CAMELLIA_CTR", "CAMELLIA_CTR";
        CamelliaCcm8 = 25, "ENCR_CAMELLIA_CCM_8_ICV", "CAMELLIA_CCM_8";
        CamelliaCcm12 = 26, "ENCR_CAMELLIA_CCM_12_ICV", "CAMELLIA_CCM_12";
        CamelliaCcm16 = 27, "ENCR_CAMELLIA_CCM_16_ICV", "CAMELLIA_CCM_16";
        Chacha20Poly1305 = 28, "ENCR_CHACHA20_POLY1305", "CHACHA20_POLY1305";
        AesCcm8Iiv = 29, "ENCR_AES_CCM_8_IIV", "AES_CCM_8_IIV";
        AesGcm16Iiv = 30, "ENCR_AES_GCM_16_IIV", "AES_GCM_16_IIV";
        Chacha20Poly1305Iiv = 31, "ENCR_CHACHA20_POLY1305_IIV", "CHACHA20_POLY1305_IIV";
        KuznyechikMgmKtree = 32, "ENCR_KUZNYECHIK_MGM_KTREE", "KUZNYECHIK_MGM_KTREE";
        MagmaMgmKtree = 33, "ENCR_MAGMA_MGM_KTREE", "MAGMA_MGM_KTREE";
        KuznyechikMgmMacKtree = 34, "ENCR_KUZNYECHIK_MGM_MAC_KTREE", "KUZNYECHIK_MGM_MAC_KTREE";
        MagmaMgmMacKtree = 35, "ENCR_MAGMA_MGM_MAC_KTREE", "MAGMA_MGM_MAC_KTREE";
    }
}

registry! {
    /// Transform type 2: pseudorandom functions.
    PrfId: u16 {
        HmacMd5 = 1, "PRF_HMAC_MD5", "HMAC_MD5";
        HmacSha1 = 2, "PRF_HMAC_SHA1", "HMAC_SHA1";
        HmacTiger = 3, "PRF_HMAC_TIGER", "HMAC_TIGER";
        Aes128Xcbc = 4, "PRF_AES128_XCBC", "AES128_XCBC";
        HmacSha2_256 = 5, "PRF_HMAC_SHA2_256", "HMAC_SHA2_256";
        HmacSha2_384 = 6, "PRF_HMAC_SHA2_384", "HMAC_SHA2_384";
        HmacSha2_512 = 7, "PRF_HMAC_SHA2_512", "HMAC_SHA2_512";
        Aes128Cmac = 8, "PRF_AES128_CMAC", "AES128_CMAC";
        HmacStreebog512 = 9, "PRF_HMAC_STREEBOG_512", "HMAC_STREEBOG_512";
    }
}

registry! {
    /// Transform type 3: integrity algorithms.
    IntegId: u16 {
        None = 0, "NONE", "NONE";
        HmacMd5_96 = 1, "AUTH_HMAC_MD5_96", "HMAC_MD5_96";
        HmacSha1_96 = 2, "AUTH_HMAC_SHA1_96", "HMAC_SHA1_96";
        DesMac = 3, "AUTH_DES_MAC", "DES_MAC";
        KpdkMd5 = 4, "AUTH_KPDK_MD5", "KPDK_MD5";
        AesXcbc96 = 5, "AUTH_AES_XCBC_96", "AES_XCBC_96";
        HmacMd5_128 = 6, "AUTH_HMAC_MD5_128", "HMAC_MD5_128";
        HmacSha1_160 = 7, "AUTH_HMAC_SHA1_160", "HMAC_SHA1_160";
        AesCmac96 = 8, "AUTH_AES_CMAC_96", "AES_CMAC_96";
        Aes128Gmac = 9, "AUTH_AES_128_GMAC", "AES_128_GMAC";
        Aes192Gmac = 10, "AUTH_AES_192_GMAC", "AES_192_GMAC";
        Aes256Gmac = 11, "AUTH_AES_256_GMAC", "AES_256_GMAC";
        HmacSha2_256_128 = 12, "AUTH_HMAC_SHA2_256_128", "HMAC_SHA2_256_128";
        HmacSha2_384_192 = 13, "AUTH_HMAC_SHA2_384_192", "HMAC_SHA2_384_192";
        HmacSha2_512_256 = 14, "AUTH_HMAC_SHA2_512_256", "HMAC_SHA2_512_256";
    }
}

registry! {
    /// Transform types 4 and 6-12: key exchange methods (Diffie-Hellman groups and KEMs).
    DhId: u16 {
        None = 0, "NONE", "NONE";
        Modp768 = 1, "768-bit MODP Group", "MODP_768";
        Modp1024 = 2, "1024-bit MODP Group", "MODP_1024";
        Modp1536 = 5, "1536-bit MODP Group", "MODP_1536";
        Modp2048 = 14, "2048-bit MODP Group", "MODP_2048";
        Modp3072 = 15, "3072-bit MODP Group", "MODP_3072";
        Modp4096 = 16, "4096-bit MODP Group", "MODP_4096";
        Modp6144 = 17, "6144-bit MODP Group", "MODP_6144";
        Modp8192 = 18, "8192-bit MODP Group", "MODP_8192";
        Ecp256 = 19, "256-bit random ECP group", "ECP_256";
        Ecp384 = 20, "384-bit random ECP group", "ECP_384";
        Ecp521 = 21, "521-bit random ECP group", "ECP_521";
        Modp1024s160 = 22, "1024-bit MODP Group with 160-bit Prime Order Subgroup", "MODP_1024_160";
        Modp2048s224 = 23, "2048-bit MODP Group with 224-bit Prime Order Subgroup", "MODP_2048_224";
        Modp2048s256 = 24, "2048-bit MODP Group with 256-bit Prime Order Subgroup", "MODP_2048_256";
        Ecp192 = 25, "192-bit Random ECP Group", "ECP_192";
        Ecp224 = 26, "224-bit Random ECP Group", "ECP_224";
        Brainpool224 = 27, "brainpoolP224r1", "ECP_224_BP";
        Brainpool256 = 28, "brainpoolP256r1", "ECP_256_BP";
        Brainpool384 = 29, "brainpoolP384r1", "ECP_384_BP";
        Brainpool512 = 30, "brainpoolP512r1", "ECP_512_BP";
        Curve25519 = 31, "Curve25519", "CURVE_25519";
        Curve448 = 32, "Curve448", "CURVE_448";
        Gost3410_2012_256 = 33, "GOST3410_2012_256", "GOST3410_2012_256";
        Gost3410_2012_512 = 34, "GOST3410_2012_512", "GOST3410_2012_512";
        MlKem512 = 35, "ML-KEM-512", "ML_KEM_512";
        MlKem768 = 36, "ML-KEM-768", "ML_KEM_768";
        MlKem1024 = 37, "ML-KEM-1024", "ML_KEM_1024";
    }
}

registry! {
    /// Transform type 5: (extended) sequence numbers.
    EsnId: u16 {
        NoEsn = 0, "No Extended Sequence Numbers", "NO_EXT_SEQ";
        Esn = 1, "Extended Sequence Numbers", "EXT_SEQ";
    }
}

registry! {
    /// Identification types (RFC 7296 §3.5, RFC 7619 NULL).
    IdType: u8 {
        Ipv4Addr = 1, "ID_IPV4_ADDR", "IPV4_ADDR";
        Fqdn = 2, "ID_FQDN", "FQDN";
        Rfc822Addr = 3, "ID_RFC822_ADDR", "RFC822_ADDR";
        Ipv6Addr = 5, "ID_IPV6_ADDR", "IPV6_ADDR";
        DerAsn1Dn = 9, "ID_DER_ASN1_DN", "DER_ASN1_DN";
        DerAsn1Gn = 10, "ID_DER_ASN1_GN", "DER_ASN1_GN";
        KeyId = 11, "ID_KEY_ID", "KEY_ID";
        FcName = 12, "ID_FC_NAME", "FC_NAME";
        Null = 13, "ID_NULL", "NULL";
    }
}

registry! {
    /// Certificate encodings (RFC 7296 §3.6, RFC 7670).
    CertEncoding: u8 {
        Pkcs7X509 = 1, "PKCS #7 wrapped X.509 certificate", "PKCS7";
        Pgp = 2, "PGP Certificate", "PGP";
        DnsSignedKey = 3, "DNS Signed Key", "DNS_KEY";
        X509Signature = 4, "X.509 Certificate - Signature", "X509";
        KerberosToken = 6, "Kerberos Token", "KERBEROS";
        Crl = 7, "Certificate Revocation List (CRL)", "CRL";
        Arl = 8, "Authority Revocation List (ARL)", "ARL";
        Spki = 9, "SPKI Certificate", "SPKI";
        X509Attribute = 10, "X.509 Certificate - Attribute", "X509_ATTR";
        RawRsaKey = 11, "Raw RSA Key (deprecated)", "RAW_RSA";
        HashUrlX509Cert = 12, "Hash and URL of X.509 certificate", "HASH_URL";
        HashUrlX509Bundle = 13, "Hash and URL of X.509 bundle", "HASH_URL_BUNDLE";
        OcspContent = 14, "OCSP Content", "OCSP";
        RawPublicKey = 15, "Raw Public Key", "RAW_PUBKEY";
    }
}

registry! {
    /// Authentication methods (RFC 7296 §3.8, RFC 4754, RFC 7427, RFC 7619).
    AuthMethod: u8 {
        RsaSig = 1, "RSA Digital Signature", "RSA";
        SharedKeyMic = 2, "Shared Key Message Integrity Code", "PSK";
        DssSig = 3, "DSS Digital Signature", "DSS";
        EcdsaSha256P256 = 9, "ECDSA with SHA-256 on the P-256 curve", "ECDSA256";
        EcdsaSha384P384 = 10, "ECDSA with SHA-384 on the P-384 curve", "ECDSA384";
        EcdsaSha512P521 = 11, "ECDSA with SHA-512 on the P-521 curve", "ECDSA521";
        GenericSecurePassword = 12, "Generic Secure Password Authentication Method", "GSPAM";
        Null = 13, "NULL Authentication", "NULL";
        DigitalSignature = 14, "Digital Signature", "DS";
    }
}

registry! {
    /// Traffic selector types (RFC 7296 §3.13.1, RFC 4595, RFC 9478).
    TsType: u8 {
        Ipv4AddrRange = 7, "TS_IPV4_ADDR_RANGE", "IPV4";
        Ipv6AddrRange = 8, "TS_IPV6_ADDR_RANGE", "IPV6";
        FcAddrRange = 9, "TS_FC_ADDR_RANGE", "FC";
        SecLabel = 10, "TS_SECLABEL", "SECLABEL";
    }
}

registry! {
    /// Configuration payload types (RFC 7296 §3.15).
    CfgType: u8 {
        Request = 1, "CFG_REQUEST", "REQ";
        Reply = 2, "CFG_REPLY", "RPLY";
        Set = 3, "CFG_SET", "SET";
        Ack = 4, "CFG_ACK", "ACK";
    }
}

registry! {
    /// Configuration payload attribute types (RFC 7296 §3.15.1 and later RFCs).
    CpAttributeType: u16 {
        InternalIp4Address = 1, "INTERNAL_IP4_ADDRESS", "ADDR";
        InternalIp4Netmask = 2, "INTERNAL_IP4_NETMASK", "MASK";
        InternalIp4Dns = 3, "INTERNAL_IP4_DNS", "DNS";
        InternalIp4Nbns = 4, "INTERNAL_IP4_NBNS", "NBNS";
        InternalIp4Dhcp = 6, "INTERNAL_IP4_DHCP", "DHCP";
        ApplicationVersion = 7, "APPLICATION_VERSION", "APP_VER";
        InternalIp6Address = 8, "INTERNAL_IP6_ADDRESS", "ADDR6";
        InternalIp6Dns = 10, "INTERNAL_IP6_DNS", "DNS6";
        InternalIp6Dhcp = 12, "INTERNAL_IP6_DHCP", "DHCP6";
        InternalIp4Subnet = 13, "INTERNAL_IP4_SUBNET", "SUBNET";
        SupportedAttributes = 14, "SUPPORTED_ATTRIBUTES", "SUPP";
        InternalIp6Subnet = 15, "INTERNAL_IP6_SUBNET", "SUBNET6";
        Mip6HomePrefix = 16, "MIP6_HOME_PREFIX", "MIP6_PREFIX";
        InternalIp6Link = 17, "INTERNAL_IP6_LINK", "LINK6";
        InternalIp6Prefix = 18, "INTERNAL_IP6_PREFIX", "PREFIX6";
        HomeAgentAddress = 19, "HOME_AGENT_ADDRESS", "HA_ADDR";
        PCscfIp4Address = 20, "P_CSCF_IP4_ADDRESS", "P_CSCF";
        PCscfIp6Address = 21, "P_CSCF_IP6_ADDRESS", "P_CSCF6";
        FttKat = 22, "FTT_KAT", "FTT_KAT";
        ExternalSourceIp4NatInfo = 23, "EXTERNAL_SOURCE_IP4_NAT_INFO", "EXT_NAT";
        TimeoutPeriodForLivenessCheck = 24, "TIMEOUT_PERIOD_FOR_LIVENESS_CHECK", "LIVENESS";
        InternalDnsDomain = 25, "INTERNAL_DNS_DOMAIN", "DNS_DOMAIN";
        InternalDnssecTa = 26, "INTERNAL_DNSSEC_TA", "DNSSEC_TA";
        EncdnsIp4 = 27, "ENCDNS_IP4", "ENCDNS4";
        EncdnsIp6 = 28, "ENCDNS_IP6", "ENCDNS6";
        EncdnsDigestInfo = 29, "ENCDNS_DIGEST_INFO", "ENCDNS_DIGEST";
    }
}

registry! {
    /// Notify message types (RFC 7296 §3.10.1 and the IANA registry).
    /// Values below 16384 are errors, 16384 and above status types.
    NotifyType: u16 {
        UnsupportedCriticalPayload = 1, "UNSUPPORTED_CRITICAL_PAYLOAD", "CRIT";
        InvalidIkeSpi = 4, "INVALID_IKE_SPI", "INVAL_IKE_SPI";
        InvalidMajorVersion = 5, "INVALID_MAJOR_VERSION", "INVAL_MAJOR";
        InvalidSyntax = 7, "INVALID_SYNTAX", "INVAL_SYN";
        InvalidMessageId = 9, "INVALID_MESSAGE_ID", "INVAL_MID";
        InvalidSpi = 11, "INVALID_SPI", "INVAL_SPI";
        NoProposalChosen = 14, "NO_PROPOSAL_CHOSEN", "NO_PROP";
        InvalidKePayload = 17, "INVALID_KE_PAYLOAD", "INVAL_KE";
        AuthenticationFailed = 24, "AUTHENTICATION_FAILED", "AUTH_FAILED";
        SinglePairRequired = 34, "SINGLE_PAIR_REQUIRED", "SINGLE_PAIR";
        NoAdditionalSas = 35, "NO_ADDITIONAL_SAS", "NO_ADD_SAS";
        InternalAddressFailure = 36, "INTERNAL_ADDRESS_FAILURE", "INT_ADDR_FAIL";
        FailedCpRequired = 37, "FAILED_CP_REQUIRED", "FAIL_CP_REQ";
        TsUnacceptable = 38, "TS_UNACCEPTABLE", "TS_UNACCEPT";
        InvalidSelectors = 39, "INVALID_SELECTORS", "INVAL_SEL";
        UnacceptableAddresses = 40, "UNACCEPTABLE_ADDRESSES", "UNACCEPT_ADDR";
        UnexpectedNatDetected = 41, "UNEXPECTED_NAT_DETECTED", "UNEXPECT_NAT";
        UseAssignedHoa = 42, "USE_ASSIGNED_HoA", "ASSIGNED_HOA";
        TemporaryFailure = 43, "TEMPORARY_FAILURE", "TEMP_FAIL";
        ChildSaNotFound = 44, "CHILD_SA_NOT_FOUND", "CHILD_NOT_FOUND";
        InvalidGroupId = 45, "INVALID_GROUP_ID", "INVAL_GROUP";
        AuthorizationFailed = 46, "AUTHORIZATION_FAILED", "AUTHZ_FAILED";
        StateNotFound = 47, "STATE_NOT_FOUND", "STATE_NOT_FOUND";
        TsMaxQueue = 48, "TS_MAX_QUEUE", "TS_MAX_QUEUE";
        InitialContact = 16384, "INITIAL_CONTACT", "INIT_CONTACT";
        SetWindowSize = 16385, "SET_WINDOW_SIZE", "SET_WINSIZE";
        AdditionalTsPossible = 16386, "ADDITIONAL_TS_POSSIBLE", "ADD_TS_POSS";
        IpcompSupported = 16387, "IPCOMP_SUPPORTED", "IPCOMP_SUP";
        NatDetectionSourceIp = 16388, "NAT_DETECTION_SOURCE_IP", "NATD_S_IP";
        NatDetectionDestinationIp = 16389, "NAT_DETECTION_DESTINATION_IP", "NATD_D_IP";
        Cookie = 16390, "COOKIE", "COOKIE";
        UseTransportMode = 16391, "USE_TRANSPORT_MODE", "USE_TRANSP";
        HttpCertLookupSupported = 16392, "HTTP_CERT_LOOKUP_SUPPORTED", "HTTP_CERT_LOOK";
        RekeySa = 16393, "REKEY_SA", "REKEY_SA";
        EspTfcPaddingNotSupported = 16394, "ESP_TFC_PADDING_NOT_SUPPORTED", "ESP_TFC_PAD_N";
        NonFirstFragmentsAlso = 16395, "NON_FIRST_FRAGMENTS_ALSO", "NON_FIRST_FRAG";
        MobikeSupported = 16396, "MOBIKE_SUPPORTED", "MOBIKE_SUP";
        AdditionalIp4Address = 16397, "ADDITIONAL_IP4_ADDRESS", "ADD_4_ADDR";
        AdditionalIp6Address = 16398, "ADDITIONAL_IP6_ADDRESS", "ADD_6_ADDR";
        NoAdditionalAddresses = 16399, "NO_ADDITIONAL_ADDRESSES", "NO_ADD_ADDR";
        UpdateSaAddresses = 16400, "UPDATE_SA_ADDRESSES", "UPD_SA_ADDR";
        Cookie2 = 16401, "COOKIE2", "COOKIE2";
        NoNatsAllowed = 16402, "NO_NATS_ALLOWED", "NO_NATS";
        AuthLifetime = 16403, "AUTH_LIFETIME", "AUTH_LFT";
        MultipleAuthSupported = 16404, "MULTIPLE_AUTH_SUPPORTED", "MULT_AUTH";
        AnotherAuthFollows = 16405, "ANOTHER_AUTH_FOLLOWS", "AUTH_FOLLOWS";
        RedirectSupported = 16406, "REDIRECT_SUPPORTED", "REDIR_SUP";
        Redirect = 16407, "REDIRECT", "REDIR";
        RedirectedFrom = 16408, "REDIRECTED_FROM", "REDIR_FROM";
        TicketLtOpaque = 16409, "TICKET_LT_OPAQUE", "TKT_LT_OPAK";
        TicketRequest = 16410, "TICKET_REQUEST", "TKT_REQ";
        TicketAck = 16411, "TICKET_ACK", "TKT_ACK";
        TicketNack = 16412, "TICKET_NACK", "TKT_NACK";
        TicketOpaque = 16413, "TICKET_OPAQUE", "TKT_OPAK";
        LinkId = 16414, "LINK_ID", "LINK_ID";
        UseWespMode = 16415, "USE_WESP_MODE", "WESP_MODE";
        RohcSupported = 16416, "ROHC_SUPPORTED", "ROHC_SUP";
        EapOnlyAuthentication = 16417, "EAP_ONLY_AUTHENTICATION", "EAP_ONLY";
        ChildlessIkev2Supported = 16418, "CHILDLESS_IKEV2_SUPPORTED", "CHDLESS_SUP";
        QuickCrashDetection = 16419, "QUICK_CRASH_DETECTION", "QUICK_CRASH_DET";
        Ikev2MessageIdSyncSupported = 16420, "IKEV2_MESSAGE_ID_SYNC_SUPPORTED", "MSG_ID_SYN_SUP";
        IpsecReplayCounterSyncSupported = 16421, "IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED", "RPL_CTR_SYN_SUP";
        Ikev2MessageIdSync = 16422, "IKEV2_MESSAGE_ID_SYNC", "MSG_ID_SYN";
        IpsecReplayCounterSync = 16423, "IPSEC_REPLAY_COUNTER_SYNC", "RPL_CTR_SYN";
        SecurePasswordMethods = 16424, "SECURE_PASSWORD_METHODS", "SEC_PASSWD";
        PskPersist = 16425, "PSK_PERSIST", "PSK_PST";
        PskConfirm = 16426, "PSK_CONFIRM", "PSK_CFM";
        ErxSupported = 16427, "ERX_SUPPORTED", "ERX_SUP";
        IfomCapability = 16428, "IFOM_CAPABILITY", "IFOM_CAP";
        SenderRequestId = 16429, "SENDER_REQUEST_ID", "SENDER_REQ_ID";
        Ikev2FragmentationSupported = 16430, "IKEV2_FRAGMENTATION_SUPPORTED", "FRAG_SUP";
        SignatureHashAlgorithms = 16431, "SIGNATURE_HASH_ALGORITHMS", "HASH_ALG";
        CloneIkeSaSupported = 16432, "CLONE_IKE_SA_SUPPORTED", "CLONE_SUP";
        CloneIkeSa = 16433, "CLONE_IKE_SA", "CLONE";
        Puzzle = 16434, "PUZZLE", "PUZZLE";
        UsePpk = 16435, "USE_PPK", "USE_PPK";
        PpkIdentity = 16436, "PPK_IDENTITY", "PPK_ID";
        NoPpkAuth = 16437, "NO_PPK_AUTH", "NO_PPK";
        IntermediateExchangeSupported = 16438, "INTERMEDIATE_EXCHANGE_SUPPORTED", "INT_SUP";
        Ip4Allowed = 16439, "IP4_ALLOWED", "IP4_ALLOWED";
        Ip6Allowed = 16440, "IP6_ALLOWED", "IP6_ALLOWED";
        AdditionalKeyExchange = 16441, "ADDITIONAL_KEY_EXCHANGE", "ADD_KE";
        UseAggfrag = 16442, "USE_AGGFRAG", "AGGFRAG";
        SupportedAuthMethods = 16443, "SUPPORTED_AUTH_METHODS", "AUTH_METHODS";
        SaResourceInfo = 16444, "SA_RESOURCE_INFO", "SA_RES_INFO";
        UsePpkInt = 16445, "USE_PPK_INT", "USE_PPK_INT";
        PpkIdentityKey = 16446, "PPK_IDENTITY_KEY", "PPK_ID_KEY";
    }
}

impl NotifyType {
    /// Error types are below 16384 (RFC 7296 §3.10.1).
    pub const fn is_error(self) -> bool {
        self.value() < 16384
    }
}

impl TransformType {
    /// Whether transform IDs of this type are key exchange methods (KE, ADDKE1-7).
    pub const fn is_key_exchange(self) -> bool {
        matches!(self.value(), 4 | 6..=12)
    }
}
