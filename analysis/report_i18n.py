"""Report texts in English, Spanish and French (headings, captions, methodology, notes).

Only the report's own words are translated; data values (country codes, URLs, mechanism and
status names, measurement ids, page titles) are shown as they are in the data.  Every language
has exactly the same keys and the same ``{placeholders}`` (a unit test holds them together).
The register is that of ITU documents: formal, impersonal, short sentences.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["LANGS", "MECHANISMS", "STATUSES", "texts"]

LANGS: tuple[str, ...] = ("en", "es", "fr")

MECHANISMS: tuple[str, ...] = (
    "none", "dns_nxdomain", "dns_bogon", "dns_inconsistent", "tcp_timeout", "tcp_refused",
    "tcp_reset", "tls_reset", "tls_timeout", "tls_cert", "http_geoblock", "http_451",
    "http_geo_redirect", "http_blockpage", "http_status", "http_body", "http_timeout",
    "http_reset", "route_blackhole",
)  # fmt: skip
STATUSES: tuple[str, ...] = ("accessible", "denied", "down", "inconclusive")
LOCI: tuple[str, ...] = ("server", "local", "transit", "unknown")
CONFIDENCES: tuple[str, ...] = ("confirmed", "likely", "possible")

_EN: dict[str, str] = {
    # -- document -------------------------------------------------------------------------
    "title_default": "Evidence of denial of access to Internet sites",
    "subtitle": "Measurements of denial of access to public Internet sites, by country pair "
    "(ITU Resolution 64)",
    "period": "Period of measurement",
    "period_value": "{first} to {last} (UTC)",
    "generated": "Report date",
    "annex": "Annex",
    "table": "Table",
    "figure": "Figure",
    "source_note": "Source: res64-probe analysis of {measurements} measurements, {first} to "
    "{last} (UTC).",
    "truncated_note": "Only the first {shown} of {total} rows are shown here; the CSV and XLSX "
    "files hold every row.",
    "none_found": "None.",
    "unattributed": "unattributed",
    "unknown_value": "unknown",
    "figure_files_note": "The figures are in the HTML and DOCX versions of this report.",
    # -- summary --------------------------------------------------------------------------
    "s_summary": "Summary",
    "summary_intro": "Key figures for the period from {first} to {last} (UTC):",
    "kf_vantages": "Vantage points",
    "kf_vantage_countries": "Countries of the vantage points",
    "kf_vantage_networks": "Networks of the vantage points",
    "kf_targets": "Targets measured",
    "kf_measurements": "Measurements",
    "kf_denials": "Denials found (one target denied in one affected country)",
    "kf_denied_targets": "Distinct targets denied",
    "kf_affected": "Affected countries",
    "kf_pairs": "Country pairs",
    "kf_unattributed": "Denials not attributed to a country",
    "kf_inconclusive": "Inconclusive results (not counted as denials)",
    "kf_down": "Targets unreachable from every country (down; not counted as denials)",
    "summary_none": "No denial of access was found.",
    "reading_note": "How to read this report: the affected country is the country from which "
    "the measurement was made; the responsible country is the country where the party that "
    "denies access is located (the operator of the site for a geoblock, the local network for "
    "a national block). A denial is reported only when the same target was accessible from at "
    "least one other country in the same period.",
    "pairs_intro": "Each row counts the targets denied in the affected country whose denial "
    "is attributed to the responsible country shown. “{unattributed}” means that a denial was "
    "observed but its origin could not be located.",
    "cap_pairs": "Denied targets by country pair",
    "fig_heatmap": "Share of targets denied, by affected and responsible country",
    "fig_mechanisms": "Mechanisms of denial by country pair",
    "axis_affected": "Affected country",
    "axis_responsible": "Responsible country",
    "axis_share": "Share of targets denied",
    "axis_count": "Number (as counted by the analysis)",
    "legend_mechanism": "Mechanism",
    "no_denial_figure": "No denial observed",
    # -- per country ----------------------------------------------------------------------
    "s_targets": "Denied targets by affected country",
    "targets_intro": "One table per affected country lists each denied target, how access was "
    "denied, where the denial took place, and example measurements that show it. Measurement "
    "identifiers refer to records of the dataset listed under data provenance.",
    "cap_targets": "Targets denied (affected country: {cc})",
    "s_inconclusive": "Inconclusive and unreachable targets",
    "inconclusive_intro": "These targets are counted but no one is accused: either the "
    "results were mixed (some measurements failed, others succeeded) or no control from "
    "another country could reach the target (inconclusive), or the target could not be "
    "reached from any country (down).",
    "cap_inconclusive": "Inconclusive and unreachable targets",
    # -- vantages -------------------------------------------------------------------------
    "s_vantages": "Vantage points",
    "vantages_intro": "A vantage point is a computer that performs the measurements from a "
    "given country and network. Only countries and network numbers (autonomous system "
    "numbers, ASN) are shown; addresses are never recorded.",
    "cap_vantage_countries": "Vantage points by country",
    "cap_vantage_networks": "Vantage points by network",
    # -- methodology ----------------------------------------------------------------------
    "s_method": "Methodology",
    "method_steps": "Each measurement attempts to reach one target from one vantage point and "
    "records the outcome of four successive steps: DNS (translation of the site's name into "
    "addresses, also checked through a control resolver outside the vantage point's network); "
    "TCP (opening a connection to the site's server); TLS (establishing the encrypted session "
    "and checking the site's certificate, for https addresses); and HTTP(S) (the page "
    "returned: status code, headers, title and beginning of the content).",
    "method_controls": "Every failure is compared with controls: measurements of the same "
    "target made from vantage points in other countries within {window} of it. A target that "
    "fails from every country is classified as down, not denied. No denial is reported "
    "without at least one accessible control.",
    "method_rules": "Returned pages are compared with known signatures of geoblocking pages "
    "and of national block pages (fingerprints version {fingerprints}). Verdicts are produced "
    "by versioned rules (rules version {rules}); each verdict keeps the identifier of the rule "
    "that produced it, so that every row of this report can be traced to the measurements "
    "behind it.",
    "method_attribution": "The responsible country follows from the locus of the denial: for a "
    "denial by the server (a geoblock), the country of the site's operator, or failing that "
    "of its server; for a denial in the vantage point's own network, the country of the "
    "vantage point; for a denial in transit, the country of the network hop where it occurs. "
    "When the locus cannot be established, the denial is reported as “{unattributed}” and is "
    "never guessed.",
    "s_confidence": "Confidence levels",
    "conf_confirmed": "an explicit signal (a geoblock or block-page signature, HTTP status 451, "
    "or a known block-page address) and at least one accessible control.",
    "conf_likely": "the denial was reproduced in at least two measurements made at different "
    "times, and the target was accessible from at least two control countries.",
    "conf_possible": "a denial consistent with the controls, but supported by weaker evidence "
    "than the two levels above.",
    "s_locus": "Locus (where the denial takes place)",
    "locus_server": "at the site itself or its content delivery network.",
    "locus_local": "in the network of the vantage point (for example, national filtering).",
    "locus_transit": "in a network on the path between the vantage point and the site.",
    "locus_unknown": "the place of the denial could not be established.",
    "s_status": "Status of a target",
    "status_accessible": "reached normally.",
    "status_denied": "access refused or prevented, while accessible from another country.",
    "status_down": "unreachable from every country, controls included.",
    "status_inconclusive": "mixed results, or no accessible control: not counted as a denial.",
    "cap_glossary": "Mechanisms of denial",
    # mechanism explanations
    "mech_none": "no interference observed.",
    "mech_dns_nxdomain": "the resolver stated that the name does not exist, while the control "
    "resolver knew it.",
    "mech_dns_bogon": "the resolver returned a private or reserved address.",
    "mech_dns_inconsistent": "the resolver returned addresses different from those of the "
    "control resolver (for example, that of a block-page server).",
    "mech_tcp_timeout": "the connection to the server received no answer.",
    "mech_tcp_refused": "the connection to the server was refused.",
    "mech_tcp_reset": "the connection was interrupted (TCP reset).",
    "mech_tls_reset": "the connection was interrupted during the encrypted handshake, "
    "typically after the site's name was sent.",
    "mech_tls_timeout": "the encrypted handshake received no answer.",
    "mech_tls_cert": "the certificate presented was not valid for the site (possible "
    "interception).",
    "mech_http_geoblock": "the site or its content delivery network returned a page refusing "
    "visitors from the country.",
    "mech_http_451": "HTTP status 451, “Unavailable For Legal Reasons”.",
    "mech_http_geo_redirect": "the site redirected to a page stating that the service is not "
    "available in the region.",
    "mech_http_blockpage": "a block page of a national authority or network operator was returned.",
    "mech_http_status": "an error status (for example 403, “Forbidden”) returned to this "
    "country only.",
    "mech_http_body": "a page different from the one received by the controls.",
    "mech_http_timeout": "the request for the page received no answer.",
    "mech_http_reset": "the connection was interrupted during the request for the page.",
    "mech_route_blackhole": "packets were discarded on the route to the server.",
    # -- limitations ----------------------------------------------------------------------
    "s_limits": "Limitations",
    "limit_geoblock": "Denials by the server (geoblocks) are attributed to the country of the "
    "site's operator (or of its server when the operator is not known). The operator may "
    "apply the restriction to comply with the law of another country, which a measurement "
    "cannot observe.",
    "limit_resets": "Connection resets and timeouts are attributed only when a route "
    "measurement (traceroute) localises them; otherwise they remain unattributed.",
    "limit_coverage": "The results hold only for the vantage points used (section 4). Other "
    "networks in the same country may be treated differently, and a country without a "
    "vantage point is not measured at all.",
    "limit_geoip": "The countries of servers and network hops are derived from a geolocation "
    "(GeoIP) database, which may be inaccurate, in particular for content delivery networks "
    "and anycast addresses.",
    "limit_targets": "Only targets on the target list were tested; the share of targets "
    "denied depends on the composition of that list and does not measure the Internet as a "
    "whole.",
    "limit_titles": "Page titles are reproduced as received from the network; they have not "
    "been verified and may be misleading.",
    # -- provenance -----------------------------------------------------------------------
    "s_provenance": "Data provenance",
    "provenance_intro": "This report is generated from the files below. Their SHA-256 digests "
    "allow anyone to verify that the data have not been altered; the commands allow the "
    "results to be reproduced.",
    "cap_dataset_files": "Dataset files (input of the analysis)",
    "cap_analysis_files": "Analysis files (input of this report)",
    "cap_versions": "Versions and commands",
    "k_software_analysis": "Software version (analysis)",
    "k_software_report": "Software version (report)",
    "k_rules": "Rules version",
    "k_fingerprints": "Fingerprints version",
    "k_window": "Comparison window",
    "k_analysis_generated": "Date of the analysis",
    "k_report_generated": "Date of the report",
    "k_analysis_command": "Analysis command",
    "k_report_command": "Report command",
    "k_counts": "Analysis counts",
    "k_title": "Title",
    "k_period": "Period",
    "k_language": "Language",
    # -- column labels --------------------------------------------------------------------
    "c_affected": "Affected country",
    "c_responsible": "Responsible country",
    "c_targets_denied": "Targets denied",
    "c_targets_tested": "Targets tested",
    "c_share": "Share denied",
    "c_mechanisms": "Mechanisms",
    "c_confidence": "Confidence",
    "c_measurements": "Measurements",
    "c_vantages": "Vantage points",
    "c_networks": "Networks",
    "c_first_seen": "First seen (UTC)",
    "c_last_seen": "Last seen (UTC)",
    "c_url": "Target (URL)",
    "c_category": "Category",
    "c_mechanism": "Mechanism",
    "c_locus": "Locus",
    "c_status": "Status",
    "c_n_denied": "Measurements denied",
    "c_n_failed": "Measurements failed",
    "c_controls_ok": "Accessible controls",
    "c_control_ccs": "Control countries",
    "c_examples": "Example measurements",
    "c_page_title": "Page title (example)",
    "c_country": "Country",
    "c_asn": "Network (ASN)",
    "c_as_name": "Network name",
    "c_term": "Term",
    "c_meaning": "Meaning",
    "c_file": "File",
    "c_size": "Size (bytes)",
    "c_sha256": "SHA-256",
    "c_item": "Item",
    "c_value": "Value",
    "c_number": "No.",
    "c_caption": "Caption",
    "c_sheet": "Sheet",
    "cap_about": "About this workbook",
}

_ES: dict[str, str] = {
    "title_default": "Pruebas de denegación de acceso a sitios de Internet",
    "subtitle": "Mediciones de la denegación de acceso a sitios públicos de Internet, por par "
    "de países (Resolución 64 de la UIT)",
    "period": "Periodo de medición",
    "period_value": "Del {first} al {last} (UTC)",
    "generated": "Fecha del informe",
    "annex": "Anexo",
    "table": "Cuadro",
    "figure": "Figura",
    "source_note": "Fuente: análisis de res64-probe de {measurements} mediciones, del {first} "
    "al {last} (UTC).",
    "truncated_note": "Solo se muestran aquí las {shown} primeras de {total} filas; los "
    "ficheros CSV y XLSX contienen todas las filas.",
    "none_found": "Ninguno.",
    "unattributed": "no atribuido",
    "unknown_value": "desconocido",
    "figure_files_note": "Las figuras figuran en las versiones HTML y DOCX del presente informe.",
    "s_summary": "Resumen",
    "summary_intro": "Cifras clave del periodo comprendido entre el {first} y el {last} (UTC):",
    "kf_vantages": "Puntos de medición",
    "kf_vantage_countries": "Países de los puntos de medición",
    "kf_vantage_networks": "Redes de los puntos de medición",
    "kf_targets": "Objetivos medidos",
    "kf_measurements": "Mediciones",
    "kf_denials": "Denegaciones comprobadas (un objetivo denegado en un país afectado)",
    "kf_denied_targets": "Objetivos distintos denegados",
    "kf_affected": "Países afectados",
    "kf_pairs": "Pares de países",
    "kf_unattributed": "Denegaciones no atribuidas a un país",
    "kf_inconclusive": "Resultados no concluyentes (no contabilizados como denegaciones)",
    "kf_down": "Objetivos inaccesibles desde todos los países (fuera de servicio; no "
    "contabilizados como denegaciones)",
    "summary_none": "No se comprobó ninguna denegación de acceso.",
    "reading_note": "Cómo leer este informe: el país afectado es el país desde el que se "
    "realizó la medición; el país responsable es el país en el que se encuentra la parte que "
    "deniega el acceso (el operador del sitio en caso de bloqueo geográfico, la red local en "
    "caso de bloqueo nacional). Solo se notifica una denegación cuando el mismo objetivo era "
    "accesible desde al menos otro país durante el mismo periodo.",
    "pairs_intro": "Cada fila contabiliza los objetivos denegados en el país afectado cuya "
    "denegación se atribuye al país responsable indicado. «{unattributed}» significa que se "
    "observó una denegación, pero no pudo localizarse su origen.",
    "cap_pairs": "Objetivos denegados por par de países",
    "fig_heatmap": "Proporción de objetivos denegados, por país afectado y país responsable",
    "fig_mechanisms": "Mecanismos de denegación por par de países",
    "axis_affected": "País afectado",
    "axis_responsible": "País responsable",
    "axis_share": "Proporción de objetivos denegados",
    "axis_count": "Número (según el recuento del análisis)",
    "legend_mechanism": "Mecanismo",
    "no_denial_figure": "No se observó ninguna denegación",
    "s_targets": "Objetivos denegados por país afectado",
    "targets_intro": "Para cada país afectado, un cuadro enumera los objetivos denegados, la "
    "forma en que se denegó el acceso, el lugar en que se produjo la denegación y ejemplos de "
    "mediciones que la demuestran. Los identificadores de medición remiten a registros del "
    "conjunto de datos indicado en la sección sobre la procedencia de los datos.",
    "cap_targets": "Objetivos denegados (país afectado: {cc})",
    "s_inconclusive": "Objetivos no concluyentes e inaccesibles",
    "inconclusive_intro": "Estos objetivos se contabilizan, pero no se imputa responsabilidad "
    "a nadie: o bien los resultados fueron dispares (algunas mediciones fallaron y otras "
    "tuvieron éxito) o ningún control desde otro país pudo acceder al objetivo (no "
    "concluyente), o bien el objetivo no era accesible desde ningún país (fuera de servicio).",
    "cap_inconclusive": "Objetivos no concluyentes e inaccesibles",
    "s_vantages": "Puntos de medición",
    "vantages_intro": "Un punto de medición es un ordenador que realiza las mediciones desde "
    "un país y una red determinados. Solo se indican los países y los números de red (números "
    "de sistema autónomo, ASN); nunca se registran las direcciones.",
    "cap_vantage_countries": "Puntos de medición por país",
    "cap_vantage_networks": "Puntos de medición por red",
    "s_method": "Metodología",
    "method_steps": "Cada medición intenta acceder a un objetivo desde un punto de medición y "
    "registra el resultado de cuatro etapas sucesivas: DNS (traducción del nombre del sitio en "
    "direcciones, verificada también mediante un resolutor de control situado fuera de la red "
    "del punto de medición); TCP (apertura de una conexión con el servidor del sitio); TLS "
    "(establecimiento de la sesión cifrada y verificación del certificado del sitio, para las "
    "direcciones https); y HTTP(S) (la página devuelta: código de estado, encabezados, título "
    "y comienzo del contenido).",
    "method_controls": "Cada fallo se compara con controles: mediciones del mismo objetivo "
    "realizadas desde puntos de medición situados en otros países en un intervalo de "
    "{window}. Un objetivo que falla desde todos los países se clasifica como fuera de "
    "servicio, no como denegado. No se notifica ninguna denegación sin al menos un control "
    "que haya podido acceder al objetivo.",
    "method_rules": "Las páginas devueltas se comparan con firmas conocidas de páginas de "
    "bloqueo geográfico y de páginas de bloqueo nacionales (versión {fingerprints} de las "
    "firmas). Los veredictos se obtienen mediante reglas versionadas (versión {rules} de las "
    "reglas); cada veredicto conserva el identificador de la regla que lo produjo, de modo "
    "que cada fila del presente informe puede vincularse con las mediciones en que se basa.",
    "method_attribution": "El país responsable se deduce del lugar de la denegación: en caso "
    "de denegación por el servidor (bloqueo geográfico), el país del operador del sitio o, en "
    "su defecto, el de su servidor; en caso de denegación en la propia red del punto de "
    "medición, el país del punto de medición; en caso de denegación en tránsito, el país del "
    "salto de red en que se produce. Cuando no puede determinarse el lugar, la denegación se "
    "notifica como «{unattributed}» y nunca se presupone.",
    "s_confidence": "Niveles de confianza",
    "conf_confirmed": "una señal explícita (firma de bloqueo geográfico o de página de "
    "bloqueo, código de estado HTTP 451 o dirección conocida de página de bloqueo) y al menos "
    "un control con acceso.",
    "conf_likely": "la denegación se reprodujo en al menos dos mediciones realizadas en "
    "momentos distintos y el objetivo era accesible desde al menos dos países de control.",
    "conf_possible": "una denegación coherente con los controles, pero respaldada por pruebas "
    "más débiles que las de los dos niveles anteriores.",
    "s_locus": "Lugar (donde se produce la denegación)",
    "locus_server": "en el propio sitio o en su red de distribución de contenidos.",
    "locus_local": "en la red del punto de medición (por ejemplo, filtrado nacional).",
    "locus_transit": "en una red situada en el trayecto entre el punto de medición y el sitio.",
    "locus_unknown": "no pudo determinarse el lugar de la denegación.",
    "s_status": "Estado de un objetivo",
    "status_accessible": "accesible con normalidad.",
    "status_denied": "acceso rechazado o impedido, aunque accesible desde otro país.",
    "status_down": "inaccesible desde todos los países, incluidos los controles.",
    "status_inconclusive": "resultados dispares o ningún control con acceso: no se "
    "contabiliza como denegación.",
    "cap_glossary": "Mecanismos de denegación",
    "mech_none": "no se observó ninguna interferencia.",
    "mech_dns_nxdomain": "el resolutor indicó que el nombre no existe, mientras que el "
    "resolutor de control lo conocía.",
    "mech_dns_bogon": "el resolutor devolvió una dirección privada o reservada.",
    "mech_dns_inconsistent": "el resolutor devolvió direcciones distintas de las del "
    "resolutor de control (por ejemplo, la de un servidor de páginas de bloqueo).",
    "mech_tcp_timeout": "la conexión con el servidor no obtuvo respuesta.",
    "mech_tcp_refused": "el servidor rechazó la conexión.",
    "mech_tcp_reset": "se interrumpió la conexión (restablecimiento TCP).",
    "mech_tls_reset": "se interrumpió la conexión durante el establecimiento de la sesión "
    "cifrada, normalmente tras el envío del nombre del sitio.",
    "mech_tls_timeout": "el establecimiento de la sesión cifrada no obtuvo respuesta.",
    "mech_tls_cert": "el certificado presentado no era válido para el sitio (posible "
    "interceptación).",
    "mech_http_geoblock": "el sitio o su red de distribución de contenidos devolvió una "
    "página que rechaza a los visitantes procedentes del país.",
    "mech_http_451": "código de estado HTTP 451, «No disponible por razones legales».",
    "mech_http_geo_redirect": "el sitio redirigió a una página que indica que el servicio no "
    "está disponible en la región.",
    "mech_http_blockpage": "se devolvió una página de bloqueo de una autoridad nacional o de "
    "un operador de red.",
    "mech_http_status": "un código de estado de error (por ejemplo, 403, «Prohibido») "
    "devuelto únicamente a este país.",
    "mech_http_body": "una página distinta de la recibida por los controles.",
    "mech_http_timeout": "la solicitud de la página no obtuvo respuesta.",
    "mech_http_reset": "se interrumpió la conexión durante la solicitud de la página.",
    "mech_route_blackhole": "los paquetes se descartaron en la ruta hacia el servidor.",
    "s_limits": "Limitaciones",
    "limit_geoblock": "Las denegaciones por el servidor (bloqueos geográficos) se atribuyen "
    "al país del operador del sitio (o al de su servidor cuando se desconoce el operador). El "
    "operador puede aplicar la restricción para cumplir la legislación de otro país, lo que "
    "una medición no puede observar.",
    "limit_resets": "Los restablecimientos de conexión y los agotamientos de plazo solo se "
    "atribuyen cuando una medición de ruta (traceroute) permite localizarlos; de lo "
    "contrario, quedan sin atribuir.",
    "limit_coverage": "Los resultados solo son válidos para los puntos de medición utilizados "
    "(sección 4). Otras redes del mismo país pueden recibir un trato distinto, y un país sin "
    "punto de medición no se mide en absoluto.",
    "limit_geoip": "Los países de los servidores y de los saltos de red se deducen de una base "
    "de datos de geolocalización (GeoIP), que puede ser inexacta, en particular para las redes "
    "de distribución de contenidos y las direcciones anycast.",
    "limit_targets": "Solo se midieron los objetivos de la lista de objetivos; la proporción "
    "de objetivos denegados depende de la composición de dicha lista y no constituye una "
    "medida de Internet en su conjunto.",
    "limit_titles": "Los títulos de página se reproducen tal como se recibieron de la red; no "
    "se han verificado y pueden inducir a error.",
    "s_provenance": "Procedencia de los datos",
    "provenance_intro": "El presente informe se genera a partir de los ficheros siguientes. "
    "Sus resúmenes SHA-256 permiten a cualquiera verificar que los datos no se han alterado; "
    "los comandos permiten reproducir los resultados.",
    "cap_dataset_files": "Ficheros del conjunto de datos (entrada del análisis)",
    "cap_analysis_files": "Ficheros del análisis (entrada del presente informe)",
    "cap_versions": "Versiones y comandos",
    "k_software_analysis": "Versión del programa (análisis)",
    "k_software_report": "Versión del programa (informe)",
    "k_rules": "Versión de las reglas",
    "k_fingerprints": "Versión de las firmas",
    "k_window": "Intervalo de comparación",
    "k_analysis_generated": "Fecha del análisis",
    "k_report_generated": "Fecha del informe",
    "k_analysis_command": "Comando del análisis",
    "k_report_command": "Comando del informe",
    "k_counts": "Recuentos del análisis",
    "k_title": "Título",
    "k_period": "Periodo",
    "k_language": "Idioma",
    "c_affected": "País afectado",
    "c_responsible": "País responsable",
    "c_targets_denied": "Objetivos denegados",
    "c_targets_tested": "Objetivos medidos",
    "c_share": "Proporción denegada",
    "c_mechanisms": "Mecanismos",
    "c_confidence": "Confianza",
    "c_measurements": "Mediciones",
    "c_vantages": "Puntos de medición",
    "c_networks": "Redes",
    "c_first_seen": "Primera observación (UTC)",
    "c_last_seen": "Última observación (UTC)",
    "c_url": "Objetivo (URL)",
    "c_category": "Categoría",
    "c_mechanism": "Mecanismo",
    "c_locus": "Lugar",
    "c_status": "Estado",
    "c_n_denied": "Mediciones denegadas",
    "c_n_failed": "Mediciones fallidas",
    "c_controls_ok": "Controles con acceso",
    "c_control_ccs": "Países de control",
    "c_examples": "Mediciones de ejemplo",
    "c_page_title": "Título de la página (ejemplo)",
    "c_country": "País",
    "c_asn": "Red (ASN)",
    "c_as_name": "Nombre de la red",
    "c_term": "Término",
    "c_meaning": "Significado",
    "c_file": "Fichero",
    "c_size": "Tamaño (bytes)",
    "c_sha256": "SHA-256",
    "c_item": "Elemento",
    "c_value": "Valor",
    "c_number": "N.º",
    "c_caption": "Título",
    "c_sheet": "Hoja",
    "cap_about": "Acerca de este libro",
}

_FR: dict[str, str] = {
    "title_default": "Éléments de preuve de refus d'accès à des sites Internet",
    "subtitle": "Mesures du refus d'accès à des sites Internet publics, par paire de pays "
    "(Résolution 64 de l'UIT)",
    "period": "Période de mesure",
    "period_value": "Du {first} au {last} (UTC)",
    "generated": "Date du rapport",
    "annex": "Annexe",
    "table": "Tableau",
    "figure": "Figure",
    "source_note": "Source\u00a0: analyse res64-probe de {measurements} mesures, du {first} au "
    "{last} (UTC).",
    "truncated_note": "Seules les {shown} premières lignes sur {total} sont reproduites ici; "
    "les fichiers CSV et XLSX contiennent toutes les lignes.",
    "none_found": "Néant.",
    "unattributed": "non attribué",
    "unknown_value": "inconnu",
    "figure_files_note": "Les figures figurent dans les versions HTML et DOCX du présent rapport.",
    "s_summary": "Résumé",
    "summary_intro": "Chiffres clés pour la période du {first} au {last} (UTC)\u00a0:",
    "kf_vantages": "Points de mesure",
    "kf_vantage_countries": "Pays des points de mesure",
    "kf_vantage_networks": "Réseaux des points de mesure",
    "kf_targets": "Cibles mesurées",
    "kf_measurements": "Mesures",
    "kf_denials": "Refus constatés (une cible refusée dans un pays concerné)",
    "kf_denied_targets": "Cibles distinctes refusées",
    "kf_affected": "Pays concernés",
    "kf_pairs": "Paires de pays",
    "kf_unattributed": "Refus non attribués à un pays",
    "kf_inconclusive": "Résultats non concluants (non comptés comme des refus)",
    "kf_down": "Cibles inaccessibles depuis tous les pays (hors service; non comptées comme "
    "des refus)",
    "summary_none": "Aucun refus d'accès n'a été constaté.",
    "reading_note": "Comment lire le présent rapport\u00a0: le pays concerné est le pays depuis "
    "lequel la mesure a été effectuée; le pays responsable est le pays où se trouve la partie "
    "qui refuse l'accès (l'exploitant du site dans le cas d'un blocage géographique, le réseau "
    "local dans le cas d'un blocage national). Un refus n'est signalé que si la même cible "
    "était accessible depuis au moins un autre pays au cours de la même période.",
    "pairs_intro": "Chaque ligne dénombre les cibles refusées dans le pays concerné dont le "
    "refus est attribué au pays responsable indiqué. «\u00a0{unattributed}\u00a0» signifie "
    "qu'un refus a été observé, mais que son origine n'a pu être localisée.",
    "cap_pairs": "Cibles refusées par paire de pays",
    "fig_heatmap": "Proportion de cibles refusées, par pays concerné et pays responsable",
    "fig_mechanisms": "Mécanismes de refus par paire de pays",
    "axis_affected": "Pays concerné",
    "axis_responsible": "Pays responsable",
    "axis_share": "Proportion de cibles refusées",
    "axis_count": "Nombre (selon le décompte de l'analyse)",
    "legend_mechanism": "Mécanisme",
    "no_denial_figure": "Aucun refus observé",
    "s_targets": "Cibles refusées par pays concerné",
    "targets_intro": "Pour chaque pays concerné, un tableau énumère les cibles refusées, la "
    "manière dont l'accès a été refusé, l'endroit où le refus s'est produit et des exemples de "
    "mesures qui l'attestent. Les identifiants de mesure renvoient à des enregistrements de "
    "l'ensemble de données indiqué dans la section relative à la provenance des données.",
    "cap_targets": "Cibles refusées (pays concerné\u00a0: {cc})",
    "s_inconclusive": "Cibles non concluantes et inaccessibles",
    "inconclusive_intro": "Ces cibles sont dénombrées, mais personne n'est mis en cause\u00a0: "
    "soit les résultats étaient partagés (certaines mesures ont échoué, d'autres ont réussi) "
    "ou aucun contrôle depuis un autre pays n'a pu atteindre la cible (non concluant), soit "
    "la cible était inaccessible depuis tous les pays (hors service).",
    "cap_inconclusive": "Cibles non concluantes et inaccessibles",
    "s_vantages": "Points de mesure",
    "vantages_intro": "Un point de mesure est un ordinateur qui effectue les mesures depuis un "
    "pays et un réseau donnés. Seuls les pays et les numéros de réseau (numéros de système "
    "autonome, ASN) sont indiqués; les adresses ne sont jamais enregistrées.",
    "cap_vantage_countries": "Points de mesure par pays",
    "cap_vantage_networks": "Points de mesure par réseau",
    "s_method": "Méthodologie",
    "method_steps": "Chaque mesure tente d'atteindre une cible depuis un point de mesure et "
    "enregistre le résultat de quatre étapes successives\u00a0: DNS (traduction du nom du site "
    "en adresses, vérifiée également au moyen d'un résolveur de contrôle situé hors du réseau "
    "du point de mesure); TCP (ouverture d'une connexion avec le serveur du site); TLS "
    "(établissement de la session chiffrée et vérification du certificat du site, pour les "
    "adresses https); et HTTP(S) (la page renvoyée\u00a0: code d'état, en-têtes, titre et "
    "début du contenu).",
    "method_controls": "Chaque échec est comparé à des contrôles\u00a0: des mesures de la même "
    "cible effectuées depuis des points de mesure situés dans d'autres pays dans un intervalle "
    "de {window}. Une cible qui échoue depuis tous les pays est classée hors service, et non "
    "refusée. Aucun refus n'est signalé sans au moins un contrôle ayant pu accéder à la cible.",
    "method_rules": "Les pages renvoyées sont comparées à des signatures connues de pages de "
    "blocage géographique et de pages de blocage nationales (version {fingerprints} des "
    "signatures). Les verdicts sont établis au moyen de règles versionnées (version {rules} "
    "des règles); chaque verdict conserve l'identifiant de la règle qui l'a produit, de sorte "
    "que chaque ligne du présent rapport peut être rattachée aux mesures sur lesquelles elle "
    "repose.",
    "method_attribution": "Le pays responsable découle du lieu du refus\u00a0: pour un refus "
    "par le serveur (blocage géographique), le pays de l'exploitant du site ou, à défaut, celui "
    "de son serveur; pour un refus dans le réseau même du point de mesure, le pays du point de "
    "mesure; pour un refus en transit, le pays du saut de réseau où il se produit. Lorsque le "
    "lieu ne peut être établi, le refus est signalé comme «\u00a0{unattributed}\u00a0» et "
    "n'est jamais présumé.",
    "s_confidence": "Niveaux de confiance",
    "conf_confirmed": "un signal explicite (signature de blocage géographique ou de page de "
    "blocage, code d'état HTTP 451 ou adresse connue de page de blocage) et au moins un "
    "contrôle ayant eu accès.",
    "conf_likely": "le refus a été reproduit dans au moins deux mesures effectuées à des "
    "moments différents, et la cible était accessible depuis au moins deux pays de contrôle.",
    "conf_possible": "un refus cohérent avec les contrôles, mais étayé par des éléments plus "
    "faibles que ceux des deux niveaux précédents.",
    "s_locus": "Lieu (où le refus se produit)",
    "locus_server": "sur le site lui-même ou sur son réseau de diffusion de contenu.",
    "locus_local": "dans le réseau du point de mesure (par exemple, filtrage national).",
    "locus_transit": "dans un réseau situé sur le trajet entre le point de mesure et le site.",
    "locus_unknown": "le lieu du refus n'a pu être établi.",
    "s_status": "État d'une cible",
    "status_accessible": "atteinte normalement.",
    "status_denied": "accès refusé ou empêché, alors que la cible est accessible depuis un "
    "autre pays.",
    "status_down": "inaccessible depuis tous les pays, contrôles compris.",
    "status_inconclusive": "résultats partagés ou aucun contrôle ayant eu accès\u00a0: non "
    "compté comme un refus.",
    "cap_glossary": "Mécanismes de refus",
    "mech_none": "aucune interférence observée.",
    "mech_dns_nxdomain": "le résolveur a indiqué que le nom n'existe pas, alors que le "
    "résolveur de contrôle le connaissait.",
    "mech_dns_bogon": "le résolveur a renvoyé une adresse privée ou réservée.",
    "mech_dns_inconsistent": "le résolveur a renvoyé des adresses différentes de celles du "
    "résolveur de contrôle (par exemple, celle d'un serveur de pages de blocage).",
    "mech_tcp_timeout": "la connexion avec le serveur est restée sans réponse.",
    "mech_tcp_refused": "le serveur a refusé la connexion.",
    "mech_tcp_reset": "la connexion a été interrompue (réinitialisation TCP).",
    "mech_tls_reset": "la connexion a été interrompue pendant l'établissement de la session "
    "chiffrée, généralement après l'envoi du nom du site.",
    "mech_tls_timeout": "l'établissement de la session chiffrée est resté sans réponse.",
    "mech_tls_cert": "le certificat présenté n'était pas valable pour le site (interception "
    "possible).",
    "mech_http_geoblock": "le site ou son réseau de diffusion de contenu a renvoyé une page "
    "refusant les visiteurs en provenance du pays.",
    "mech_http_451": "code d'état HTTP 451, «\u00a0Indisponible pour des raisons "
    "juridiques\u00a0».",
    "mech_http_geo_redirect": "le site a redirigé vers une page indiquant que le service "
    "n'est pas disponible dans la région.",
    "mech_http_blockpage": "une page de blocage d'une autorité nationale ou d'un opérateur de "
    "réseau a été renvoyée.",
    "mech_http_status": "un code d'état d'erreur (par exemple 403, «\u00a0Interdit\u00a0») "
    "renvoyé à ce seul pays.",
    "mech_http_body": "une page différente de celle reçue par les contrôles.",
    "mech_http_timeout": "la demande de la page est restée sans réponse.",
    "mech_http_reset": "la connexion a été interrompue pendant la demande de la page.",
    "mech_route_blackhole": "les paquets ont été éliminés sur la route menant au serveur.",
    "s_limits": "Limites",
    "limit_geoblock": "Les refus par le serveur (blocages géographiques) sont attribués au pays "
    "de l'exploitant du site (ou à celui de son serveur lorsque l'exploitant n'est pas connu). "
    "L'exploitant peut appliquer la restriction pour se conformer à la législation d'un autre "
    "pays, ce qu'une mesure ne permet pas d'observer.",
    "limit_resets": "Les réinitialisations de connexion et les dépassements de délai ne sont "
    "attribués que lorsqu'une mesure de route (traceroute) permet de les localiser; à défaut, "
    "ils restent non attribués.",
    "limit_coverage": "Les résultats ne valent que pour les points de mesure utilisés "
    "(section 4). D'autres réseaux du même pays peuvent être traités différemment, et un pays "
    "dépourvu de point de mesure n'est pas mesuré du tout.",
    "limit_geoip": "Les pays des serveurs et des sauts de réseau sont déduits d'une base de "
    "données de géolocalisation (GeoIP), qui peut être inexacte, notamment pour les réseaux de "
    "diffusion de contenu et les adresses anycast.",
    "limit_targets": "Seules les cibles figurant sur la liste de cibles ont été mesurées; la "
    "proportion de cibles refusées dépend de la composition de cette liste et ne constitue pas "
    "une mesure de l'Internet dans son ensemble.",
    "limit_titles": "Les titres de page sont reproduits tels qu'ils ont été reçus du réseau; "
    "ils n'ont pas été vérifiés et peuvent être trompeurs.",
    "s_provenance": "Provenance des données",
    "provenance_intro": "Le présent rapport est établi à partir des fichiers ci-dessous. Leurs "
    "empreintes SHA-256 permettent à quiconque de vérifier que les données n'ont pas été "
    "modifiées; les commandes permettent de reproduire les résultats.",
    "cap_dataset_files": "Fichiers de l'ensemble de données (entrée de l'analyse)",
    "cap_analysis_files": "Fichiers de l'analyse (entrée du présent rapport)",
    "cap_versions": "Versions et commandes",
    "k_software_analysis": "Version du logiciel (analyse)",
    "k_software_report": "Version du logiciel (rapport)",
    "k_rules": "Version des règles",
    "k_fingerprints": "Version des signatures",
    "k_window": "Intervalle de comparaison",
    "k_analysis_generated": "Date de l'analyse",
    "k_report_generated": "Date du rapport",
    "k_analysis_command": "Commande de l'analyse",
    "k_report_command": "Commande du rapport",
    "k_counts": "Décomptes de l'analyse",
    "k_title": "Titre",
    "k_period": "Période",
    "k_language": "Langue",
    "c_affected": "Pays concerné",
    "c_responsible": "Pays responsable",
    "c_targets_denied": "Cibles refusées",
    "c_targets_tested": "Cibles mesurées",
    "c_share": "Proportion refusée",
    "c_mechanisms": "Mécanismes",
    "c_confidence": "Confiance",
    "c_measurements": "Mesures",
    "c_vantages": "Points de mesure",
    "c_networks": "Réseaux",
    "c_first_seen": "Première observation (UTC)",
    "c_last_seen": "Dernière observation (UTC)",
    "c_url": "Cible (URL)",
    "c_category": "Catégorie",
    "c_mechanism": "Mécanisme",
    "c_locus": "Lieu",
    "c_status": "État",
    "c_n_denied": "Mesures refusées",
    "c_n_failed": "Mesures en échec",
    "c_controls_ok": "Contrôles ayant eu accès",
    "c_control_ccs": "Pays de contrôle",
    "c_examples": "Exemples de mesures",
    "c_page_title": "Titre de la page (exemple)",
    "c_country": "Pays",
    "c_asn": "Réseau (ASN)",
    "c_as_name": "Nom du réseau",
    "c_term": "Terme",
    "c_meaning": "Signification",
    "c_file": "Fichier",
    "c_size": "Taille (octets)",
    "c_sha256": "SHA-256",
    "c_item": "Élément",
    "c_value": "Valeur",
    "c_number": "N°",
    "c_caption": "Titre",
    "c_sheet": "Feuille",
    "cap_about": "À propos de ce classeur",
}

_TEXTS: dict[str, dict[str, str]] = {"en": _EN, "es": _ES, "fr": _FR}


def texts(lang: str) -> Mapping[str, str]:
    """The report texts of ``lang`` (one of :data:`LANGS`); KeyError for any other."""
    return _TEXTS[lang]
