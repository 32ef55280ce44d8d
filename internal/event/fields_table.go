// The canonical event: 131 columns, in the order of the enriched TSV.

package event

// Field indexes, in enriched TSV order.
const (
	AppID = iota
	Platform
	EtlTstamp
	CollectorTstamp
	DvceCreatedTstamp
	Event
	EventID
	TxnID
	NameTracker
	VTracker
	VCollector
	VEtl
	UserID
	UserIPAddress
	UserFingerprint
	DomainUserID
	DomainSessionIdx
	NetworkUserID
	GeoCountry
	GeoRegion
	GeoCity
	GeoZipcode
	GeoLatitude
	GeoLongitude
	GeoRegionName
	IpIsp
	IpOrganization
	IpDomain
	IpNetspeed
	PageURL
	PageTitle
	PageReferrer
	PageURLScheme
	PageURLHost
	PageURLPort
	PageURLPath
	PageURLQuery
	PageURLFragment
	RefrURLScheme
	RefrURLHost
	RefrURLPort
	RefrURLPath
	RefrURLQuery
	RefrURLFragment
	RefrMedium
	RefrSource
	RefrTerm
	MktMedium
	MktSource
	MktTerm
	MktContent
	MktCampaign
	Contexts
	SeCategory
	SeAction
	SeLabel
	SeProperty
	SeValue
	UnstructEvent
	TrOrderID
	TrAffiliation
	TrTotal
	TrTax
	TrShipping
	TrCity
	TrState
	TrCountry
	TiOrderID
	TiSku
	TiName
	TiCategory
	TiPrice
	TiQuantity
	PpXoffsetMin
	PpXoffsetMax
	PpYoffsetMin
	PpYoffsetMax
	UserAgent
	BrName
	BrFamily
	BrVersion
	BrType
	BrRenderengine
	BrLang
	BrFeaturesPdf
	BrFeaturesFlash
	BrFeaturesJava
	BrFeaturesDirector
	BrFeaturesQuicktime
	BrFeaturesRealplayer
	BrFeaturesWindowsmedia
	BrFeaturesGears
	BrFeaturesSilverlight
	BrCookies
	BrColordepth
	BrViewwidth
	BrViewheight
	OsName
	OsFamily
	OsManufacturer
	OsTimezone
	DvceType
	DvceIsmobile
	DvceScreenwidth
	DvceScreenheight
	DocCharset
	DocWidth
	DocHeight
	TrCurrency
	TrTotalBase
	TrTaxBase
	TrShippingBase
	TiCurrency
	TiPriceBase
	BaseCurrency
	GeoTimezone
	MktClickID
	MktNetwork
	EtlTags
	DvceSentTstamp
	RefrDomainUserID
	RefrDvceTstamp
	DerivedContexts
	DomainSessionID
	DerivedTstamp
	EventVendor
	EventName
	EventFormat
	EventVersion
	EventFingerprint
	TrueTstamp

	// NumFields is the number of columns in an enriched event.
	NumFields
)

// Fields describes every column: name, type and the default maximum
// length enforced on strings (0: none).
var Fields = [NumFields]Field{
	{"app_id", String, 255},
	{"platform", String, 255},
	{"etl_tstamp", Timestamp, 0},
	{"collector_tstamp", Timestamp, 0},
	{"dvce_created_tstamp", Timestamp, 0},
	{"event", String, 128},
	{"event_id", String, 36},
	{"txn_id", Int, 0},
	{"name_tracker", String, 128},
	{"v_tracker", String, 100},
	{"v_collector", String, 100},
	{"v_etl", String, 100},
	{"user_id", String, 255},
	{"user_ipaddress", String, 128},
	{"user_fingerprint", String, 128},
	{"domain_userid", String, 128},
	{"domain_sessionidx", Int, 0},
	{"network_userid", String, 128},
	{"geo_country", String, 2},
	{"geo_region", String, 3},
	{"geo_city", String, 75},
	{"geo_zipcode", String, 15},
	{"geo_latitude", Double, 0},
	{"geo_longitude", Double, 0},
	{"geo_region_name", String, 100},
	{"ip_isp", String, 100},
	{"ip_organization", String, 128},
	{"ip_domain", String, 128},
	{"ip_netspeed", String, 100},
	{"page_url", String, 10000},
	{"page_title", String, 2000},
	{"page_referrer", String, 10000},
	{"page_urlscheme", String, 16},
	{"page_urlhost", String, 255},
	{"page_urlport", Int, 0},
	{"page_urlpath", String, 3000},
	{"page_urlquery", String, 6000},
	{"page_urlfragment", String, 3000},
	{"refr_urlscheme", String, 16},
	{"refr_urlhost", String, 255},
	{"refr_urlport", Int, 0},
	{"refr_urlpath", String, 6000},
	{"refr_urlquery", String, 6000},
	{"refr_urlfragment", String, 3000},
	{"refr_medium", String, 25},
	{"refr_source", String, 50},
	{"refr_term", String, 255},
	{"mkt_medium", String, 255},
	{"mkt_source", String, 255},
	{"mkt_term", String, 255},
	{"mkt_content", String, 500},
	{"mkt_campaign", String, 255},
	{"contexts", JSON, 0},
	{"se_category", String, 1000},
	{"se_action", String, 1000},
	{"se_label", String, 4096},
	{"se_property", String, 1000},
	{"se_value", Double, 0},
	{"unstruct_event", JSON, 0},
	{"tr_orderid", String, 255},
	{"tr_affiliation", String, 255},
	{"tr_total", Double, 0},
	{"tr_tax", Double, 0},
	{"tr_shipping", Double, 0},
	{"tr_city", String, 255},
	{"tr_state", String, 255},
	{"tr_country", String, 255},
	{"ti_orderid", String, 255},
	{"ti_sku", String, 255},
	{"ti_name", String, 255},
	{"ti_category", String, 255},
	{"ti_price", Double, 0},
	{"ti_quantity", Int, 0},
	{"pp_xoffset_min", Int, 0},
	{"pp_xoffset_max", Int, 0},
	{"pp_yoffset_min", Int, 0},
	{"pp_yoffset_max", Int, 0},
	{"useragent", String, 1000},
	{"br_name", String, 50},
	{"br_family", String, 50},
	{"br_version", String, 50},
	{"br_type", String, 50},
	{"br_renderengine", String, 50},
	{"br_lang", String, 255},
	{"br_features_pdf", Bool, 0},
	{"br_features_flash", Bool, 0},
	{"br_features_java", Bool, 0},
	{"br_features_director", Bool, 0},
	{"br_features_quicktime", Bool, 0},
	{"br_features_realplayer", Bool, 0},
	{"br_features_windowsmedia", Bool, 0},
	{"br_features_gears", Bool, 0},
	{"br_features_silverlight", Bool, 0},
	{"br_cookies", Bool, 0},
	{"br_colordepth", String, 12},
	{"br_viewwidth", Int, 0},
	{"br_viewheight", Int, 0},
	{"os_name", String, 50},
	{"os_family", String, 50},
	{"os_manufacturer", String, 50},
	{"os_timezone", String, 255},
	{"dvce_type", String, 50},
	{"dvce_ismobile", Bool, 0},
	{"dvce_screenwidth", Int, 0},
	{"dvce_screenheight", Int, 0},
	{"doc_charset", String, 128},
	{"doc_width", Int, 0},
	{"doc_height", Int, 0},
	{"tr_currency", String, 3},
	{"tr_total_base", Double, 0},
	{"tr_tax_base", Double, 0},
	{"tr_shipping_base", Double, 0},
	{"ti_currency", String, 3},
	{"ti_price_base", Double, 0},
	{"base_currency", String, 3},
	{"geo_timezone", String, 64},
	{"mkt_clickid", String, 1000},
	{"mkt_network", String, 64},
	{"etl_tags", String, 500},
	{"dvce_sent_tstamp", Timestamp, 0},
	{"refr_domain_userid", String, 128},
	{"refr_dvce_tstamp", Timestamp, 0},
	{"derived_contexts", JSON, 0},
	{"domain_sessionid", String, 128},
	{"derived_tstamp", Timestamp, 0},
	{"event_vendor", String, 1000},
	{"event_name", String, 1000},
	{"event_format", String, 128},
	{"event_version", String, 128},
	{"event_fingerprint", String, 128},
	{"true_tstamp", Timestamp, 0},
}
